export { run, type Registrar } from './main.js';
export { EXIT, CliError } from './exitCodes.js';
export type { Io, Output } from './io.js';
export {
  apiSnapshotSource,
  checkInvariants,
  type SnapshotSource,
  type InvariantReport,
} from './loadtest/invariants.js';
export { explainBlockers, type Explanation } from './blockers.js';
