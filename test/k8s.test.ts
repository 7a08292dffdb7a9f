// The Kubernetes manifests under examples/k8s/, checked offline. `kubectl apply --dry-run=client`
// needs a cluster to look the kinds up (it fails with "failed to download openapi" without one),
// so this is a schema check of its own, by the Kubernetes API reference for the kinds used:
//
// What it proves: every document parses and is one of the kinds used (apps/v1 Deployment, v1
// Service, batch/v1 Job) with no field outside those the API has at each level checked (a typo
// such as `completionMod` fails), names are DNS labels, ports are in range, selectors match
// their pod templates, each Service's targetPort names a container port, Jobs restart Never or
// OnFailure; and the run fits together: the clt Job is Indexed with --shard INDEX/completions
// taken from the completion index, every instance names the same bus (the NATS Service) and run,
// clt targets the srv Service, the controller expects the clt shards plus the srv replicas, and
// each program's arguments pass its own flag parser.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { UsageError } from '../dist/src/cli/args.js';
import { parse as parseClt } from '../dist/clt/config.js';
import { parse as parseSrv } from '../dist/srv/config.js';

import { root } from './proc.js';

const dir = join(root, 'examples/k8s');
type Obj = Record<string, any>;

const docs: { file: string; o: Obj }[] = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .flatMap((file) =>
    parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => {
      expect(d.errors, `${file}: ${d.errors.join('; ')}`).toEqual([]);
      return { file, o: d.toJS() as Obj };
    }),
  );

/** The fields the API has, for the objects checked (a subset of the API reference, enough for these manifests). */
const FIELDS = {
  top: ['apiVersion', 'kind', 'metadata', 'spec'],
  metadata: ['name', 'namespace', 'labels', 'annotations'],
  deploymentSpec: ['replicas', 'selector', 'template', 'strategy', 'minReadySeconds', 'revisionHistoryLimit', 'progressDeadlineSeconds', 'paused'],
  jobSpec: ['completions', 'parallelism', 'completionMode', 'backoffLimit', 'activeDeadlineSeconds', 'ttlSecondsAfterFinished', 'template', 'selector', 'manualSelector', 'suspend', 'podFailurePolicy', 'backoffLimitPerIndex', 'maxFailedIndexes'],
  serviceSpec: ['selector', 'ports', 'type', 'clusterIP', 'sessionAffinity', 'externalTrafficPolicy', 'ipFamilyPolicy'],
  servicePort: ['name', 'port', 'targetPort', 'protocol', 'nodePort', 'appProtocol'],
  template: ['metadata', 'spec'],
  podSpec: ['containers', 'restartPolicy', 'initContainers', 'volumes', 'nodeSelector', 'affinity', 'tolerations', 'hostNetwork', 'terminationGracePeriodSeconds', 'securityContext', 'serviceAccountName'],
  container: ['name', 'image', 'command', 'args', 'env', 'ports', 'resources', 'imagePullPolicy', 'securityContext', 'workingDir', 'volumeMounts', 'readinessProbe', 'livenessProbe'],
  containerPort: ['name', 'containerPort', 'protocol', 'hostPort'],
  env: ['name', 'value', 'valueFrom'],
  resources: ['requests', 'limits'],
};
const KINDS: Record<string, string> = { Deployment: 'apps/v1', Service: 'v1', Job: 'batch/v1' };
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function only(o: Obj | undefined, fields: string[], where: string): void {
  expect(o, `${where} is missing`).toBeTypeOf('object');
  for (const k of Object.keys(o!)) expect(fields, `${where}.${k} is not a field of the API`).toContain(k);
}

function checkPod(t: Obj, where: string, kind: string): Obj[] {
  only(t, FIELDS.template, `${where}.template`);
  only(t.metadata, FIELDS.metadata, `${where}.template.metadata`);
  only(t.spec, FIELDS.podSpec, `${where}.template.spec`);
  if (kind === 'Job') expect(['Never', 'OnFailure'], `${where}: a Job's pods restart Never or OnFailure`).toContain(t.spec.restartPolicy);
  expect(t.spec.containers.length).toBeGreaterThan(0);
  for (const c of t.spec.containers as Obj[]) {
    const w = `${where} container ${c.name}`;
    only(c, FIELDS.container, w);
    expect(c.name).toMatch(DNS_LABEL);
    expect(c.image, `${w}: image`).toMatch(/^[\w./:-]+$/);
    for (const a of [...(c.command ?? []), ...(c.args ?? [])]) expect(a, `${w}: command and args are strings`).toBeTypeOf('string');
    for (const e of (c.env ?? []) as Obj[]) only(e, FIELDS.env, `${w} env ${e.name}`);
    for (const p of (c.ports ?? []) as Obj[]) {
      only(p, FIELDS.containerPort, `${w} port`);
      expect(Number.isInteger(p.containerPort) && p.containerPort > 0 && p.containerPort < 65536).toBe(true);
      if (p.name !== undefined) expect(p.name, 'a port name is at most 15 characters').toMatch(/^[a-z0-9-]{1,15}$/);
    }
    if (c.resources) only(c.resources, FIELDS.resources, `${w}.resources`);
  }
  return t.spec.containers as Obj[];
}

const byKind = (kind: string, name: string): Obj => {
  const d = docs.find((x) => x.o.kind === kind && x.o.metadata.name === name);
  expect(d, `${kind} ${name}`).toBeDefined();
  return d!.o;
};
const flag = (args: string[], f: string): string | undefined => (args.includes(f) ? args[args.indexOf(f) + 1] : undefined);

describe('examples/k8s manifests (offline schema check)', () => {
  it('every document is a known kind with only API fields, valid names, ports and selectors', () => {
    expect(docs.length).toBe(6);
    for (const { file, o } of docs) {
      const where = `${file}: ${o.kind} ${o.metadata?.name}`;
      only(o, FIELDS.top, where);
      expect(KINDS[o.kind], `${where}: kind`).toBeDefined();
      expect(o.apiVersion, `${where}: apiVersion`).toBe(KINDS[o.kind]);
      only(o.metadata, FIELDS.metadata, `${where}.metadata`);
      expect(o.metadata.name).toMatch(DNS_LABEL);
      if (o.kind === 'Deployment') {
        only(o.spec, FIELDS.deploymentSpec, `${where}.spec`);
        for (const [k, v] of Object.entries(o.spec.selector.matchLabels as Obj)) expect(o.spec.template.metadata.labels[k], `${where}: the selector matches the template`).toBe(v);
        checkPod(o.spec.template, where, 'Deployment');
      } else if (o.kind === 'Job') {
        only(o.spec, FIELDS.jobSpec, `${where}.spec`);
        if (o.spec.completionMode !== undefined) expect(['NonIndexed', 'Indexed']).toContain(o.spec.completionMode);
        if (o.spec.completionMode === 'Indexed') expect(Number.isInteger(o.spec.completions), `${where}: an Indexed Job needs completions`).toBe(true);
        expect(o.spec.parallelism).toBeLessThanOrEqual(o.spec.completions);
        checkPod(o.spec.template, where, 'Job');
      } else {
        only(o.spec, FIELDS.serviceSpec, `${where}.spec`);
        const target = docs.find((d) => d.o.kind === 'Deployment' && Object.entries(o.spec.selector as Obj).every(([k, v]) => d.o.spec.template.metadata.labels[k] === v));
        expect(target, `${where}: the selector picks a Deployment's pods`).toBeDefined();
        const ports = (target!.o.spec.template.spec.containers as Obj[]).flatMap((c) => (c.ports ?? []) as Obj[]);
        for (const p of o.spec.ports as Obj[]) {
          only(p, FIELDS.servicePort, `${where} port`);
          expect(p.port > 0 && p.port < 65536).toBe(true);
          expect(ports.some((c) => c.name === p.targetPort || c.containerPort === p.targetPort), `${where}: targetPort ${p.targetPort} is a container port`).toBe(true);
        }
      }
    }
  });

  it('the run fits together: shards from the completion index, one bus and run, clt targets srv, --expect counts every instance', () => {
    const nats = byKind('Service', 'iapp-nats');
    const bus = `nats://${nats.metadata.name}:${nats.spec.ports[0].port}`;
    const srvSvc = byKind('Service', 'iapp-srv');
    const srv = byKind('Deployment', 'iapp-srv');
    const clt = byKind('Job', 'iapp-clt');
    const ctl = byKind('Job', 'iapp-control');
    const srvArgs = srv.spec.template.spec.containers[0].args as string[];
    const cltC = clt.spec.template.spec.containers[0];
    const cltArgs = cltC.args as string[];
    const ctlArgs = ctl.spec.template.spec.containers[0].args as string[];
    for (const a of [srvArgs, cltArgs, ctlArgs]) {
      expect(flag(a, '--bus')).toBe(bus);
      expect(flag(a, '--run')).toBe(flag(srvArgs, '--run'));
    }
    expect(clt.spec.completionMode).toBe('Indexed');
    expect(flag(cltArgs, '--shard')).toBe(`$(SHARD_INDEX)/${clt.spec.completions}`);
    const index = (cltC.env as Obj[]).find((e) => e.name === 'SHARD_INDEX');
    expect(index.valueFrom.fieldRef.fieldPath).toBe("metadata.annotations['batch.kubernetes.io/job-completion-index']");
    expect(flag(cltArgs, '--target')).toBe(`${srvSvc.metadata.name}:${srvSvc.spec.ports[0].port}`);
    expect(Number(flag(ctlArgs, '--expect'))).toBe(clt.spec.completions + srv.spec.replicas);
    expect(ctlArgs).toContain('--control');
  });

  it("each program's arguments pass its own flag parser (with each shard's index in place)", () => {
    const clt = byKind('Job', 'iapp-clt');
    for (let i = 0; i < clt.spec.completions; i++) {
      const args = (clt.spec.template.spec.containers[0].args as string[]).map((a) => a.replace('$(SHARD_INDEX)', String(i)));
      expect(parseClt(args)).toMatchObject({ shard: { index: i, count: clt.spec.completions }, bus: { run: expect.any(String) } });
    }
    expect(parseClt(byKind('Job', 'iapp-control').spec.template.spec.containers[0].args)).toMatchObject({ expect: expect.any(Number) });
    expect(parseSrv(byKind('Deployment', 'iapp-srv').spec.template.spec.containers[0].args)).toMatchObject({ bus: { run: expect.any(String) } });
    // The check can fail: a shard past N is refused.
    expect(() => parseClt(['--threads', '8', '--shard', '2/2'])).toThrow(UsageError);
  });

  it('the schema check catches a misspelt field', () => {
    expect(() => only({ completionMod: 'Indexed' }, FIELDS.jobSpec, 'spec')).toThrow(/spec.completionMod is not a field of the API/);
  });
});
