// Loop timers: allocated once (the only step that can fail), then armed, re-armed and disarmed
// by a few stores into arrays the native loop reads before it next waits, with no native call
// and nothing allocated. Time is whole milliseconds as numbers, nanoseconds as bigints.
// Run: node examples/timers.mjs
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

export function setup(loop) {
  const start = loop.now();
  const at = () => `${Number((loop.now() - start) / 1_000_000n)} ms`;
  const log = [];
  return new Promise((resolve) => {
    // An interval: `expirations` > 1 if the loop was late and periods were missed.
    let ticks = 0;
    const tick = loop.timer({ priority: 1 }, (expirations) => {
      log.push(`tick ${++ticks} at ${at()} (expirations ${expirations})`);
      if (ticks === 3) tick.close();
    });
    tick.armInterval(50);
    // A wall-clock instant (nanoseconds since the epoch): re-evaluated if the clock is set.
    const wall = loop.timer({ clock: 'realtime' }, () => log.push(`realtime timer at ${at()}`));
    wall.arm({ at: loop.now('realtime') + 120_000_000n });
    // An idle timeout, pushed back by each re-arm: it fires once, 100 ms after the last one.
    const idle = loop.timer(() => log.push(`idle timeout at ${at()}, after 3 re-arms`));
    for (const ms of [0, 20, 40]) setTimeout(() => idle.arm(100), ms);
    // Disarmed before it was due: it never runs.
    const never = loop.timer(() => log.push('this never runs'));
    never.arm(30);
    never.disarm();
    const done = loop.timer(() => {
      for (const t of [wall, idle, never, done]) t.close();
      resolve(log);
    });
    done.arm(250_000_000n);                                // 250 ms, as nanoseconds
  });
}

if (isMainThread) {
  const rt = await createRuntime({ module: new URL(import.meta.url), threads: 1 });
  for (const line of rt.results[0]) console.log(line);
  await rt.close();
}
