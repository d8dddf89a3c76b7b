/**
 * The two clocks of a request. The answer deadline (REQUEST_DEADLINE_MS,
 * 503 when Redis has not answered) counts from the full request: while a
 * route reads a body it is paused, and the body has its own, longer bound
 * (BODY_TIMEOUT_MS, 408 REQUEST_TIMEOUT, nothing done). A slow upload is the
 * client's delay, so it is never blamed on Redis nor logged as a server error.
 */
import type express from 'express';
import type { Response } from 'express';
import { problem, sendProblem } from './problems.js';

/**
 * Every API answer within this of the full request: the contract promises
 * one within 2 seconds even while Redis is slow. Each Redis command times out
 * at 1.5 s, but a route making two calls against a slow Redis could still
 * take longer.
 */
export const REQUEST_DEADLINE_MS = 1_800;

/** A request's place in the load-shedding count (app.ts shedLoad), given up while its body arrives. */
export interface InFlightSlot {
  release(): void;
  reacquire(): void;
}

interface DeadlineControl {
  pause(): void;
  restart(): void;
}

/**
 * Answers 503 UNAVAILABLE (Retry-After) when a request has no answer by the
 * deadline. What the route was doing may still complete: a retry finds it
 * (the reserve's stored answer, or the state for commit, release and PUT).
 * A bulk import streams for as long as its body takes and is not bounded.
 */
export function requestDeadline(ms: number): express.RequestHandler {
  return (req, res, next) => {
    // (The url test first: req.path parses the URL, a cost every request would pay.)
    if (req.url.includes('/customers:bulk') && req.path.endsWith('/customers:bulk')) return next();
    const control = new Deadline(res, ms);
    res.locals.deadline = control;
    control.restart();
    res.on('finish', pauseDeadline);
    res.on('close', pauseDeadline);
    next();
  };
}

/**
 * One request's deadline timer. A class with shared listeners and the response passed to the
 * timer, rather than closures and `once` wrappers: it runs on every API request (issue 11).
 */
class Deadline implements DeadlineControl {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly res: Response,
    private readonly ms: number,
  ) {}

  pause(): void {
    clearTimeout(this.timer);
  }

  restart(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(deadlinePassed, this.ms, this.res);
  }
}

/** 'finish' and 'close' of a response with a deadline: no answer is due any more. */
function pauseDeadline(this: Response): void {
  (this.locals.deadline as DeadlineControl).pause();
}

function deadlinePassed(res: Response): void {
  if (res.headersSent) return;
  res.locals.deadlinePassed = true;
  sendProblem(
    res,
    problem('UNAVAILABLE', {
      message: 'the quota store did not answer in time; retry shortly (with the same Idempotency-Key)',
    }),
    {
      retryAfterSeconds: 1,
    },
  );
}

/**
 * Wraps reading a body: the answer deadline waits, the body gets `timeoutMs`.
 * When the body is late the answer is 408 and the connection closes (the rest
 * of the body is not worth reading); the route never sees a body, so nothing
 * is done.
 */
export function withBodyTimeout<T>(
  res: Response,
  timeoutMs: number,
  read: () => Promise<T>,
  late: () => unknown,
): Promise<T> {
  // The whole body is already here (a small body arrives with its headers): it cannot be late,
  // and reading it takes no time worth pausing the answer deadline for.
  if (res.req.complete) return read();
  const deadline = res.locals.deadline as DeadlineControl | undefined;
  const slot = res.locals.inFlightSlot as InFlightSlot | undefined;
  deadline?.pause();
  slot?.release();
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      // Node closes the connection once this answer is out; destroying the socket at once could
      // reset it before the client has read the 408. What is left of the body is read and dropped
      // meanwhile: a socket closed with unread bytes in its receive buffer sends a reset, not a FIN.
      res.setHeader('Connection', 'close');
      res.req.resume();
      reject(late());
    }, timeoutMs);
    read().then(
      (value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        slot?.reacquire();
        deadline?.restart();
        resolve(value);
      },
      (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
