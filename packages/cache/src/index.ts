/**
 * @caas-db/cache: a shell until its release; see README.md for what it will do.
 */
export {};
