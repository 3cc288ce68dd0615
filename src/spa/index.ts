/** Single Packet Authorization (fwknop 2.6.x, Rijndael + HMAC): the public API of src/spa. */
export { checkSpaAccess, SPA_MAX_PACKET_AGE } from './access';
export type { SpaAccessResult } from './access';
export { cidrContains, cidrText, parseCidr, sourceAllowed } from './cidr';
export {
  decodeSpaPacket,
  decodeSpaAfterPrecheck,
  precheckSpaPayload,
  verifySpaHmac,
  decryptSpaBody,
  GPG_MIN_PAYLOAD,
  MAX_SPA_PAYLOAD,
  MIN_SPA_PAYLOAD,
  SALTED_PREFIX_B64,
} from './decode';
export type { SpaDecodeResult } from './decode';
export { handleSpaPacket } from './handle';
export type { SpaVerdict } from './handle';
export {
  DEFAULT_HMAC_TYPE,
  HMAC_TYPES,
  isSpaHmacType,
  makeSpaKeys,
  MAX_ENCRYPTION_KEY_BYTES,
  MAX_HMAC_KEY_BYTES,
  spaKeysFromWire,
  spaKeysToWire,
} from './keys';
export type { SpaKeysWire } from './keys';
export { parseSpaPlaintext } from './message';
export { DEFAULT_REPLAY_MAX_ENTRIES, DEFAULT_REPLAY_WINDOW_MS, ReplayCache, spaReplayDigest } from './replay';
export type { ReplayCacheJson, ReplayCacheOptions, ReplayLoadResult } from './replay';
export { SpaMessageType } from './types';
export type { SpaAccessSpec, SpaDigestType, SpaGrant, SpaMessage, SpaRefusal, SpaRefusalCode } from './types';
export type { SpaCidr, SpaDoor, SpaHmacType, SpaKeys, SpaPortSpec } from '../model';
