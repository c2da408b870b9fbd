/** Duration flags of the daemon (`--debounce 50ms`, `--resync-interval 30s`, …). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatDuration, MAX_DURATION_MS, parseDuration } from '../../src/daemon/duration.js';

test('parseDuration reads each unit and sums of them', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('1h2m3s4ms'), 3_723_004);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('.5s'), 500);
  assert.equal(parseDuration('0.25ms'), 0, 'rounded to whole milliseconds');
  assert.equal(parseDuration('0'), 0);
  assert.equal(parseDuration('0s'), 0);
  assert.equal(parseDuration(' 50ms '), 50, 'surrounding blanks are fine');
});

test('parseDuration refuses what is not a duration, naming the text and the syntax', () => {
  for (const bad of ['', '5', '10 s', 's', '5sec', '-1s', '+1s', '1d', '1e3ms', '1.s', '5m 3s', 'ms5', '0x10s', '1S', 'NaN']) {
    assert.throws(() => parseDuration(bad), (err: Error) => err instanceof RangeError && err.message.includes(`"${bad}"`) && /500ms, 30s, 5m/.test(err.message), bad);
  }
});

test('parseDuration refuses durations setTimeout cannot wait for', () => {
  assert.equal(parseDuration(`${MAX_DURATION_MS}ms`), MAX_DURATION_MS);
  assert.throws(() => parseDuration('600h'), /too long/);
});

test('formatDuration writes what parseDuration reads back', () => {
  assert.equal(formatDuration(0), '0');
  assert.equal(formatDuration(50), '50ms');
  assert.equal(formatDuration(30_000), '30s');
  assert.equal(formatDuration(90_500), '1m30s500ms');
  fc.assert(fc.property(fc.integer({ min: 0, max: MAX_DURATION_MS }), (ms) => parseDuration(formatDuration(ms)) === ms));
});
