import type { ReadConcernLevel, ReadPreferenceMode } from 'mongodb';

/** Read and write settings of one collection (an operation class), applied to every command on it. */
export interface CollectionPreset {
  readPreference?: ReadPreferenceMode;
  readConcern?: ReadConcernLevel;
  writeConcern?: { w?: number | 'majority'; journal?: boolean; wtimeoutMS?: number };
}
