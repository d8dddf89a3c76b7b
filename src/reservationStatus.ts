/**
 * A reservation's states (lua/includes/status.lua keeps one set of ids per
 * state). Its own module because two layers name them: the engine's domain
 * types and the Redis key builder (`status:<state>`), and the key builder
 * must not depend on the engine.
 */
export type ReservationStatus =
  'held' | 'committed' | 'released' | 'expired' | 'settled' | 'reversed' | 'settlement_unknown';
