/** A CPU profile of this process (the harness) while `fn` runs, written as a .cpuprofile file. */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

export async function withCpuProfile<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  }
}
