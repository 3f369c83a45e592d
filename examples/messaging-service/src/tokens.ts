import { tenantIdSchema } from '@caas-db/core';
import { errors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import { UnauthenticatedError } from './http-errors.js';

/** Who a request is from: its tenant and the tenant's own id for the user. */
export interface Principal {
  tenant: string;
  /** The user's external id in its tenant (the token's `sub`). */
  subject: string;
}

/** The HS256 key and the claims every token must carry. */
export interface TokenSettings {
  secret: string;
  issuer: string;
  audience: string;
}

const claimsSchema = z.object({ tenant: tenantIdSchema, sub: z.string().min(1).max(256) });

const keyOf = (secret: string) => new TextEncoder().encode(secret);

/**
 * Verifies a bearer token: HS256 signature, issuer, audience, expiry, and a valid `tenant` and
 * `sub`. The tenant is only ever taken from here, never from a body, a query or a header of its own.
 * @throws {UnauthenticatedError} for any token that is not all of that.
 */
export async function verifyToken(token: string, settings: TokenSettings): Promise<Principal> {
  try {
    const { payload } = await jwtVerify(token, keyOf(settings.secret), {
      algorithms: ['HS256'],
      issuer: settings.issuer,
      audience: settings.audience,
      requiredClaims: ['exp', 'sub', 'tenant'],
    });
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) throw new UnauthenticatedError('The token has no valid tenant or subject');
    return { tenant: claims.data.tenant, subject: claims.data.sub };
  } catch (error) {
    if (error instanceof UnauthenticatedError) throw error;
    const reason = error instanceof errors.JWTExpired ? 'The token has expired' : 'The token is invalid';
    throw new UnauthenticatedError(reason, { cause: error });
  }
}

/**
 * Signs a token for `principal`, as the platform's auth service would. The service itself only
 * verifies; this is for development (`pnpm token`) and tests.
 */
export async function issueToken(principal: Principal, settings: TokenSettings, expiresIn: string | number = '1h'): Promise<string> {
  return new SignJWT({ tenant: principal.tenant })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(principal.subject)
    .setIssuer(settings.issuer)
    .setAudience(settings.audience)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(keyOf(settings.secret));
}
