// --addon kqueue: the iapp systems of a scenario run twice, on the default build (epoll on Linux)
// and beside it on the kqueue build over libkqueue (scripts/build-kqueue.mjs builds it into
// build-kqueue/; the process loads it through IAPP_ADDON). The kqueue rows are named
// `<system>-kqueue` and are information only: libkqueue emulates kqueue on top of epoll, so their
// figures say what the kqueue code paths plus the emulation cost here, not what FreeBSD would do.
import { buildKqueueAddon } from '../../scripts/build-kqueue.mjs';
import { log } from './report.mjs';

export const addonOption = { addon: { type: 'string', default: 'epoll' } };
export const addonUsage = `  --addon LIST       builds the iapp systems run on: epoll (default), or kqueue to add each iapp
                     system again on the kqueue build over libkqueue, as <system>-kqueue (information)`;

/** `systems` with a kqueue variant after each iapp one when `spec` (the --addon value) asks for it. */
export function withAddons(systems, spec, isIapp = (s) => s.kind === 'iapp') {
  const want = String(spec ?? 'epoll').split(',').map((s) => s.trim());
  const bad = want.filter((w) => w !== 'epoll' && w !== 'kqueue');
  if (bad.length) {
    console.error(`--addon: unknown ${bad.join(', ')} (known: epoll, kqueue)`);
    process.exit(2);
  }
  if (!want.includes('kqueue')) return systems;
  let addon;
  try {
    addon = buildKqueueAddon({ quiet: true });
  } catch (e) {
    console.error(`--addon kqueue: ${e.message}`);
    process.exit(2);
  }
  log(`--addon kqueue: the iapp systems also run on ${addon} (kqueue over libkqueue; information only)`);
  const out = [];
  for (const s of systems) {
    out.push(s);
    if (!isIapp(s)) continue;
    out.push({
      ...s,
      name: `${s.name}-kqueue`,
      backend: 'kqueue',
      env: { IAPP_ADDON: addon },
      ...(s.what ? { what: `${s.what}; the kqueue build over libkqueue (information)` } : {}),
    });
  }
  return out;
}
