/**
 * The daemon's pass scheduler with a fake clock: debounce, coalescing,
 * never two passes at once, one more pass for requests during a pass.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PassScheduler, type SchedulerClock } from '../../src/daemon/scheduler.js';

/** A clock whose time moves only when told; timers fire in due order. */
class FakeClock implements SchedulerClock {
  time = 0;
  #next = 1;
  #timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.time + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  get armed(): number {
    return this.#timers.size;
  }
  /** Moves time forward by `ms`, firing due timers (and letting promises settle after each). */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      await settle();
      const due = [...this.#timers].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].fn();
    }
    this.time = end;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** A pass that records its reasons and start times, and takes `duration` fake ms (released by the test). */
function recorder(clock: FakeClock) {
  const passes: Array<{ at: number; reasons: string[] }> = [];
  let running = 0;
  let maxRunning = 0;
  let release: (() => void) | undefined;
  const pass = async (reasons: string[]) => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    passes.push({ at: clock.now(), reasons });
    await new Promise<void>((r) => (release = r));
    running--;
  };
  return {
    passes,
    pass,
    get maxRunning() {
      return maxRunning;
    },
    /** Ends the running pass. */
    async finish() {
      assert.ok(release, 'a pass is running');
      const r = release;
      release = undefined;
      r();
      await settle();
    },
  };
}

test('a burst of requests becomes one pass, debounce after the last one', async () => {
  const clock = new FakeClock();
  const rec = recorder(clock);
  const s = new PassScheduler(rec.pass, { debounceMs: 50, clock });
  s.request('a');
  await clock.advance(30);
  s.request('b');
  await clock.advance(30);
  s.request('a');
  await clock.advance(49);
  assert.equal(rec.passes.length, 0, 'still within the debounce of the last request');
  await clock.advance(1);
  assert.deepEqual(rec.passes, [{ at: 110, reasons: ['a', 'b'] }]);
  await rec.finish();
  await clock.advance(1000);
  assert.equal(rec.passes.length, 1, 'nothing more without requests');
  assert.equal(clock.armed, 0);
});

test('a steady stream of requests cannot delay a pass beyond maxDelay', async () => {
  const clock = new FakeClock();
  const rec = recorder(clock);
  const s = new PassScheduler(rec.pass, { debounceMs: 50, maxDelayMs: 200, clock });
  for (let t = 0; t < 400; t += 20) {
    s.request('write');
    await clock.advance(20);
    if (rec.passes.length === 1 && s.running) await rec.finish();
  }
  assert.equal(rec.passes[0]!.at, 200);
});

test('requests during a pass buy exactly one more pass after it, never two at once', async () => {
  const clock = new FakeClock();
  const rec = recorder(clock);
  const s = new PassScheduler(rec.pass, { debounceMs: 50, clock });
  s.request('startup', { immediate: true });
  await clock.advance(0);
  assert.equal(rec.passes.length, 1);
  assert.ok(s.running);
  s.request('x');
  s.request('y');
  await clock.advance(500);
  assert.equal(rec.passes.length, 1, 'no second pass while the first runs');
  assert.ok(s.pending);
  await rec.finish();
  await clock.advance(0);
  assert.equal(rec.passes.length, 2, 'the debounce of those requests had passed: at once');
  assert.deepEqual(rec.passes[1]!.reasons, ['x', 'y']);
  await rec.finish();
  await clock.advance(1000);
  assert.equal(rec.passes.length, 2);
  assert.equal(rec.maxRunning, 1);
});

test('a request just before a pass ends waits for the rest of its debounce', async () => {
  const clock = new FakeClock();
  const rec = recorder(clock);
  const s = new PassScheduler(rec.pass, { debounceMs: 50, clock });
  s.request('a', { immediate: true });
  await clock.advance(0);
  await clock.advance(100);
  s.request('b');
  await clock.advance(10);
  await rec.finish();
  await clock.advance(39);
  assert.equal(rec.passes.length, 1);
  await clock.advance(1);
  assert.equal(rec.passes.length, 2);
  assert.equal(rec.passes[1]!.at, 150);
});

test('immediate requests skip the debounce; stop() cancels what is pending and waits for the running pass', async () => {
  const clock = new FakeClock();
  const rec = recorder(clock);
  const s = new PassScheduler(rec.pass, { debounceMs: 1000, clock });
  s.request('SIGHUP', { immediate: true });
  await clock.advance(0);
  assert.equal(rec.passes.length, 1);
  s.request('later');
  let stopped = false;
  const stopping = s.stop().then(() => (stopped = true));
  await settle();
  assert.equal(stopped, false, 'stop waits for the running pass');
  await rec.finish();
  await stopping;
  await clock.advance(5000);
  s.request('after stop', { immediate: true });
  await clock.advance(5000);
  assert.equal(rec.passes.length, 1, 'no pass after stop');
  assert.equal(clock.armed, 0);
});

test('a pass that throws is reported and the scheduler goes on', async () => {
  const clock = new FakeClock();
  const errors: unknown[] = [];
  let calls = 0;
  const s = new PassScheduler(
    () => {
      calls++;
      throw new Error('boom');
    },
    { debounceMs: 10, clock, onError: (e) => errors.push(e) },
  );
  s.request('a');
  await clock.advance(10);
  assert.equal(s.running, false);
  s.request('b');
  await clock.advance(10);
  assert.equal(calls, 2);
  assert.equal(errors.length, 2);
});

test('property: passes never overlap, every request is served by a pass that starts after it', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ gap: fc.integer({ min: 0, max: 120 }), immediate: fc.boolean(), passLength: fc.integer({ min: 0, max: 200 }) }), { minLength: 1, maxLength: 30 }),
      async (steps) => {
        const clock = new FakeClock();
        const starts: number[] = [];
        const ends: number[] = [];
        const lengths = steps.map((s) => s.passLength);
        const s = new PassScheduler(
          async () => {
            starts.push(clock.now());
            const length = lengths[starts.length - 1] ?? 0;
            await new Promise<void>((r) => clock.setTimeout(r, length));
            ends.push(clock.now());
          },
          { debounceMs: 50, clock },
        );
        const requests: number[] = [];
        for (const step of steps) {
          await clock.advance(step.gap);
          requests.push(clock.now());
          s.request('r', { immediate: step.immediate });
        }
        await clock.advance(100_000);
        for (let i = 1; i < starts.length; i++) assert.ok(starts[i]! >= ends[i - 1]!, 'a pass starts after the previous one ended');
        const last = requests[requests.length - 1]!;
        assert.ok(starts.some((t) => t >= last), 'the last request was served');
        assert.ok(starts.length <= requests.length);
        assert.equal(s.running || s.pending, false);
      },
    ),
    { numRuns: 200 },
  );
});

test('leading edge: the first request after a quiet spell starts a pass at once; the rest of the burst becomes one trailing pass', async () => {
  const clock = new FakeClock();
  const rec = recorder(clock);
  const s = new PassScheduler(rec.pass, { debounceMs: 50, clock, leading: true });
  s.request('a');
  await clock.advance(0);
  assert.deepEqual(rec.passes, [{ at: 0, reasons: ['a'] }], 'no debounce for the first request');
  s.request('b');
  await clock.advance(5);
  await rec.finish();
  s.request('c');
  await clock.advance(49);
  assert.equal(rec.passes.length, 1, 'what follows the first request waits for its debounce');
  await clock.advance(1);
  assert.deepEqual(rec.passes[1], { at: 55, reasons: ['b', 'c'] });
  await rec.finish();
  await clock.advance(1000);
  assert.equal(rec.passes.length, 2, 'nothing more without requests');
  s.request('d');
  await clock.advance(0);
  assert.equal(rec.passes.length, 3, 'after a quiet spell, at once again');
  assert.equal(rec.passes[2]!.at, 1055);
  await rec.finish();
  assert.equal(rec.maxRunning, 1);
});

test('leading edge: a request within the debounce of the previous one is debounced, whenever the pass ended', async () => {
  const clock = new FakeClock();
  const rec = recorder(clock);
  const s = new PassScheduler(rec.pass, { debounceMs: 50, clock, leading: true });
  s.request('a');
  await clock.advance(0);
  await clock.advance(5);
  await rec.finish(); // the pass ends at 5
  await clock.advance(25);
  s.request('b'); // 30 ms after a
  await clock.advance(49);
  assert.equal(rec.passes.length, 1);
  await clock.advance(1);
  assert.equal(rec.passes[1]!.at, 80);
  await rec.finish();
  await clock.advance(100);
  s.request('c'); // a quiet spell again
  await clock.advance(0);
  assert.equal(rec.passes[2]!.at, 180);
});

test('leading edge: a pending settle pass does not hold back a lone request', async () => {
  const clock = new FakeClock();
  const rec = recorder(clock);
  const s = new PassScheduler(rec.pass, { debounceMs: 20, clock, leading: true, settleMs: 50 });
  s.request('a', { settle: true });
  await clock.advance(0);
  await rec.finish(); // a settle pass is due at 50
  await clock.advance(30);
  s.request('b', { settle: true });
  await clock.advance(0);
  assert.deepEqual(rec.passes[1], { at: 30, reasons: ['settle', 'b'] });
  await rec.finish();
  await clock.advance(49);
  assert.equal(rec.passes.length, 2);
  await clock.advance(1);
  assert.deepEqual(rec.passes[2], { at: 80, reasons: ['settle'] }, 'settles b, which also covers a');
  await rec.finish();
  await clock.advance(10_000);
  assert.equal(rec.passes.length, 3);
});

test('leading edge: 1,000 requests in 1 s (one a millisecond) take at most 3 passes, the last after the last request', async () => {
  for (const passLength of [1, 20, 200, 1500]) {
    const clock = new FakeClock();
    const starts: number[] = [];
    const s = new PassScheduler(
      async () => {
        starts.push(clock.now());
        await new Promise<void>((r) => clock.setTimeout(r, passLength));
      },
      { debounceMs: 50, clock, leading: true, settleMs: 50 },
    );
    for (let i = 0; i < 1000; i++) {
      s.request('write', { settle: true });
      await clock.advance(1);
    }
    const last = clock.now() - 1;
    await clock.advance(100_000);
    assert.ok(starts.length <= 3, `pass length ${passLength}: ${starts.length} passes at ${starts.join(', ')}`);
    assert.equal(starts[0], 0, 'the first pass starts at once');
    assert.ok(starts[starts.length - 1]! >= last, 'a pass started after the last request');
    assert.equal(s.running || s.pending, false);
  }
});

test('property (leading edge): passes never overlap, every request is served by a pass that starts after it', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ gap: fc.integer({ min: 0, max: 120 }), immediate: fc.boolean(), passLength: fc.integer({ min: 0, max: 200 }) }), { minLength: 1, maxLength: 30 }),
      async (steps) => {
        const clock = new FakeClock();
        const starts: number[] = [];
        const ends: number[] = [];
        const lengths = steps.map((s) => s.passLength);
        const s = new PassScheduler(
          async () => {
            starts.push(clock.now());
            const length = lengths[starts.length - 1] ?? 0;
            await new Promise<void>((r) => clock.setTimeout(r, length));
            ends.push(clock.now());
          },
          { debounceMs: 50, clock, leading: true, settleMs: 30 },
        );
        const requests: number[] = [];
        for (const step of steps) {
          await clock.advance(step.gap);
          requests.push(clock.now());
          s.request('r', { immediate: step.immediate, settle: true });
        }
        await clock.advance(100_000);
        for (let i = 1; i < starts.length; i++) assert.ok(starts[i]! >= ends[i - 1]!, 'a pass starts after the previous one ended');
        const last = requests[requests.length - 1]!;
        assert.ok(starts.some((t) => t >= last), 'the last request was served');
        assert.ok(starts.length <= 2 * requests.length, 'at most one settle pass per request');
        assert.equal(s.running || s.pending, false);
      },
    ),
    { numRuns: 200 },
  );
});

test('settle: a pass that starts within settleMs of the request it serves is followed by one more, settleMs after that request', async () => {
  const clock = new FakeClock();
  const rec = recorder(clock);
  const s = new PassScheduler(rec.pass, { debounceMs: 100, clock, leading: true, settleMs: 50 });
  s.request('a', { settle: true });
  await clock.advance(0);
  assert.deepEqual(rec.passes, [{ at: 0, reasons: ['a'] }]);
  await clock.advance(10);
  await rec.finish();
  await clock.advance(39);
  assert.equal(rec.passes.length, 1, 'not before 50 ms after the request');
  await clock.advance(1);
  assert.deepEqual(rec.passes[1], { at: 50, reasons: ['settle'] });
  await rec.finish();
  await clock.advance(10_000);
  assert.equal(rec.passes.length, 2, 'the settle pass started 50 ms after the request: nothing follows it');
  // A request while a settle pass waits: the pass waits for the request's debounce and settles it too.
  s.request('b', { settle: true });
  await clock.advance(0);
  await rec.finish(); // the leading pass of b, at 10,050
  await clock.advance(20);
  s.request('c', { settle: true });
  await clock.advance(99);
  assert.equal(rec.passes.length, 3);
  await clock.advance(1);
  assert.deepEqual(rec.passes[3], { at: 10_170, reasons: ['settle', 'c'] });
  await rec.finish();
  await clock.advance(10_000);
  assert.equal(rec.passes.length, 4, 'that pass started 100 ms after c: nothing follows it');
});
