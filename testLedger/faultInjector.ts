/**
 * The test ledger's faults: what it is told to do wrong (errors, rejections,
 * answers lost after the effect, latency, being down) and the seeded choices
 * behind the rates, so that a run with the same seed fails the same way.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { seededRandom } from '../src/seededRandom.js';

const rate = z.number().min(0).max(1);
const millis = z.number().int().min(0).max(3_600_000);

/**
 * Fault settings, all optional: used by control() and POST /_control.
 * Unknown names are refused (typos would silently test nothing).
 */
export const faultSettingsSchema = z
  .strictObject({
    /** Share of POST attempts answered 500 without recording anything. */
    failRate: rate,
    /** The first attempt of each key is answered 503 without recording. */
    failFirstAttempts: z.boolean(),
    /** These customers' new keys are rejected: 422, recorded as a rejection, no effect. */
    rejectCustomers: z.array(z.string()),
    /** Share of customers rejected, chosen by a hash of (seed, customerId): a customer is always or never rejected. */
    rejectRate: rate,
    /** Record/apply, then wait this long before answering (the caller times out not knowing the outcome). 0: off. */
    hangAfterRecordMs: millis,
    /** Share of recorded deliveries that hang (when hangAfterRecordMs > 0). */
    hangRate: rate,
    /** Settlement routes destroy the socket unanswered; the /_… routes still answer, so it can be brought back. */
    down: z.boolean(),
    /** Added before every settlement request (POST and look-up) is handled. */
    latencyMs: millis,
  })
  .partial();

export type FaultSettings = Required<z.infer<typeof faultSettingsSchema>>;

export const DEFAULT_FAULTS: FaultSettings = {
  failRate: 0,
  failFirstAttempts: false,
  rejectCustomers: [],
  rejectRate: 0,
  hangAfterRecordMs: 0,
  hangRate: 1,
  down: false,
  latencyMs: 0,
};

/** An injected failure: answered without recording anything. */
export interface InjectedFailure {
  status: 500 | 503;
  error: 'injected_failure' | 'injected_first_attempt_failure';
}

export interface FaultInjector {
  /** The settings in force (not a copy: read, do not change). */
  readonly settings: FaultSettings;
  /** Merges the given settings into the current ones (validated; throws on a bad value); returns a copy of all. */
  control(settings: Partial<FaultSettings>): FaultSettings;
  /** For each well-formed delivery, before the book sees it: a failure to answer instead, or null. */
  failure(key: string): InjectedFailure | null;
  /** Whether a new key of this customer is rejected. */
  rejects(customerId: string): boolean;
  /** For each recorded answer: whether it waits hangAfterRecordMs before it is sent. */
  hangs(): boolean;
  /** Forgets which keys were attempted and re-seeds the choices; the settings stay. */
  reset(): void;
}

/** A customer's fixed point in [0, 1): rejected when below rejectRate, on every run with this seed. */
function customerFraction(seed: number, customerId: string): number {
  return createHash('sha256').update(`${seed}:${customerId}`).digest().readUInt32BE(0) / 2 ** 32;
}

export function createFaultInjector(seed: number, initial: Partial<FaultSettings>): FaultInjector {
  const faultKeys = Object.keys(DEFAULT_FAULTS) as (keyof FaultSettings)[];
  const given = Object.fromEntries(faultKeys.filter((k) => initial[k] !== undefined).map((k) => [k, initial[k]]));
  let faults: FaultSettings = { ...DEFAULT_FAULTS, ...faultSettingsSchema.parse(given) };
  /** Keys that have had an attempt (for failFirstAttempts). */
  const attempted = new Set<string>();
  // Separate streams, so turning one fault on does not reshuffle the other's choices.
  let failRng = seededRandom(seed);
  let hangRng = seededRandom(seed ^ 0x9e3779b9);

  return {
    get settings() {
      return faults;
    },
    control(settings) {
      faults = { ...faults, ...faultSettingsSchema.parse(settings) };
      return { ...faults, rejectCustomers: [...faults.rejectCustomers] };
    },
    failure(key) {
      const firstAttempt = !attempted.has(key);
      attempted.add(key);
      if (faults.failFirstAttempts && firstAttempt) return { status: 503, error: 'injected_first_attempt_failure' };
      if (failRng() < faults.failRate) return { status: 500, error: 'injected_failure' };
      return null;
    },
    rejects: (customerId) =>
      faults.rejectCustomers.includes(customerId) || customerFraction(seed, customerId) < faults.rejectRate,
    hangs: () => faults.hangAfterRecordMs > 0 && hangRng() < faults.hangRate,
    reset() {
      attempted.clear();
      failRng = seededRandom(seed);
      hangRng = seededRandom(seed ^ 0x9e3779b9);
    },
  };
}
