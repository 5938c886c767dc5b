import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { signoffUpdate } from '../../src/shared/messages';
import { runbookConfigFor, testStack, uniqueName, useWorker } from '../harness';
import { signRequest } from '../../src/signing/decisions';
import type { deployService } from '../../src/workflows';
import { runbookCli } from '../helpers/cli';
import { putSigners, testKey } from '../helpers/keys';
import {
  requestFor,
  serviceWithV1,
  startDeploy,
  waitForState,
  waitingAt,
  withGates,
} from '../workflows/deploy-fixture';

/**
 * A person approving from the Temporal Web UI (the dev server's UI, 2.42.1): the workflow list, the workflow,
 * More Actions -> Send a Signal, the signal name and the JSON payload. Headless Chromium from Debian
 * (`apt-get install chromium`, or CHROMIUM_PATH), driven by playwright-core: no browser download.
 *
 * RUNBOOK_UPDATE_SCREENSHOTS=1 writes the screenshots of docs/approvals-web-ui.md into docs/images/.
 */
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps opening connections to Google's services, which
// an offline machine refuses many at a time.
const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const screenshotsDir = process.env.RUNBOOK_UPDATE_SCREENSHOTS ? path.join(__dirname, '../../docs/images') : undefined;
const screenshot = (name: string) => (screenshotsDir ? path.join(screenshotsDir, name) : undefined);

const uiUrl = () => `http://127.0.0.1:${testStack().settings.uiPort}`;

/** A deploy of v2 requested by dave that waits for the go-live sign-off (approvers alice and bob). */
async function deployWaitingAtGoLive(taskQueue: string) {
  const plan = await serviceWithV1(taskQueue);
  // The gate outlasts a slow browser; a timeout would roll back and fail the assertions with a clear reason.
  const handle = await startDeploy(taskQueue, withGates(plan, ['go-live'], { timeoutMs: 150_000 }), 'v2');
  await waitingAt(handle, 'go-live');
  return { plan, handle };
}

/**
 * The same deploy where signatures are required (production): alice and dave enrolled, dave's request signed with his
 * key; returns alice's key too.
 */
async function signedDeployWaitingAtGoLive(taskQueue: string) {
  const alice = testKey('alice');
  const dave = testKey('dave');
  const base = await serviceWithV1(taskQueue);
  putSigners(runbookConfigFor(taskQueue), [alice.line(), dave.line()]);
  const plan = {
    ...withGates(base, ['go-live'], { timeoutMs: 150_000 }),
    signing: { unsigned: 'refuse' as const, distinctApprovers: false },
  };
  const workflowId = uniqueName('deploy-v2');
  const request = await signRequest(
    { ...requestFor(taskQueue, plan), version: 'v2', requestedBy: 'dave' },
    { workflowId, kind: 'deploy', key: dave.file, env: process.env },
  );
  const handle = await testStack().client.workflow.start<typeof deployService>('deployService', {
    taskQueue,
    workflowId,
    args: [request],
  });
  await waitingAt(handle, 'go-live');
  return { plan, handle, alice };
}

/** Resolves once the element stops moving (the Signal dialog grows and re-centres when its editor reformats). */
async function settled(locator: Locator): Promise<void> {
  let previous = '';
  for (let i = 0; i < 50; i++) {
    const box = JSON.stringify(await locator.boundingBox());
    if (box === previous) return;
    previous = box;
    await sleep(100);
  }
  assert.fail('the Signal dialog kept moving');
}

/**
 * As a person does it: the UI's start page (the namespace's workflow list), the raw query narrowed to the
 * service's running runbooks by the RunbookService search attribute, then the workflow's own page.
 */
async function openFromWorkflowList(page: Page, service: string, workflowId: string, shot?: string): Promise<void> {
  const { namespace } = testStack();
  await page.goto(uiUrl());
  if (namespace !== 'default') await page.goto(`${uiUrl()}/namespaces/${encodeURIComponent(namespace)}/workflows`);
  const list = page.getByRole('table', { name: 'Workflows' });
  await list.waitFor();
  await page.getByTestId('toggle-manual-query').click();
  await page
    .getByRole('searchbox', { name: 'Enter a query' })
    .fill(`RunbookService="${service}" AND ExecutionStatus="Running"`);
  await page.getByRole('button', { name: 'Search' }).click();
  const link = list.getByRole('link', { name: workflowId, exact: true });
  await link.waitFor();
  assert.equal(await list.getByRole('row').filter({ hasText: 'deployService' }).count(), 1, 'only the waiting deploy');
  if (shot) await page.screenshot({ path: shot });
  await link.click();
  await page.getByRole('heading', { level: 1, name: workflowId }).waitFor();
}

/** More Actions -> Send a Signal: picks the signal, types the JSON, submits, and waits for "Workflow signaled.". */
async function sendSignal(page: Page, name: string, payload: string, shot?: string): Promise<void> {
  await page.getByRole('button', { name: 'More Actions' }).click();
  await page.getByRole('menuitem', { name: 'Send a Signal' }).click();
  const dialog = page.getByRole('dialog', { name: 'Send a Signal' });
  // The UI lists the signals the workflow defines (it asks the worker); "Custom" takes any name.
  await dialog.getByTestId('signal-select-button').click();
  await dialog.getByRole('option', { name, exact: true }).click();
  assert.equal(await dialog.getByTestId('signal-select').inputValue(), name);
  // The JSON editor is the dialog's one enabled textbox (the signal select's input is disabled).
  const data = dialog.getByRole('textbox', { disabled: false });
  await data.fill(payload);
  // On blur the editor pretty-prints the JSON and the dialog re-centres: a click during that would miss.
  await data.blur();
  const submit = dialog.getByRole('button', { name: 'Submit' });
  await settled(submit);
  assert.deepEqual(JSON.parse(await data.innerText()), JSON.parse(payload), 'the editor holds the payload');
  if (shot) await page.screenshot({ path: shot });
  await submit.click();
  await dialog.waitFor({ state: 'hidden' });
  await page.getByText('Workflow signaled.').waitFor();
}

describe('approving a deploy from the Temporal Web UI (headless Chromium)', function () {
  this.timeout(180_000);
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let page: Page;

  before(async function () {
    // An external Temporal server (TEMPORAL_ADDRESS) comes without the embedded stack's Web UI.
    if (process.env.TEMPORAL_ADDRESS) this.skip();
    assert.ok(
      existsSync(chromiumPath),
      `no Chromium at ${chromiumPath}: apt-get install chromium (or set CHROMIUM_PATH)`,
    );
    if (screenshotsDir) mkdirSync(screenshotsDir, { recursive: true });
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
  });
  after(async () => browser?.close());
  const { taskQueue } = useWorker('web-ui-approval');

  beforeEach(async () => {
    context = await browser!.newContext({ viewport: { width: 1400, height: 900 } });
    page = await context.newPage();
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && context) {
      const file = path.join(os.tmpdir(), `${uniqueName('web-ui-failure')}.png`);
      await page.screenshot({ path: file }).then(
        () => console.log(`    the page at the failure: ${file} (${page.url()})`),
        () => {},
      );
    }
    await context?.close();
    context = undefined;
  });

  it('alice pastes the signed payload of runbook signoff --print-signal into the Signal dialog: live, decided by alice (verified) via signal; an unsigned one is refused', async () => {
    const { plan, handle, alice } = await signedDeployWaitingAtGoLive(taskQueue);
    const stack = testStack();
    const printed = await runbookCli(
      [
        'signoff',
        handle.workflowId,
        '--as',
        'alice',
        '--key',
        alice.file,
        '--note',
        'signed off in the Web UI',
        '--print-signal',
        '--json',
      ],
      {
        RUNBOOK_HOME: stack.settings.home,
        TEMPORAL_ADDRESS: stack.temporalAddress,
        TEMPORAL_NAMESPACE: stack.namespace,
        RUNBOOK_TASK_QUEUE: taskQueue,
      },
    );
    assert.equal(printed.code, 0, printed.stderr);
    const payload = printed.stdout.trim();
    assert.match(payload, /^\{"by":"alice","gate":"go-live",.*"signature":"-----BEGIN SSH SIGNATURE-----/);

    await openFromWorkflowList(page, plan.service, handle.workflowId, screenshot('web-ui-workflow-list.png'));
    // Production refuses the unsigned payload that the UI used to take: recorded as refused, the gate keeps waiting.
    await sendSignal(page, 'signoff', '{"by": "alice", "gate": "go-live", "note": "unsigned"}');
    const state = await waitForState(
      handle,
      (s) => (s.gates.find((g) => g.gate === 'go-live')?.refused.length ?? 0) === 1,
      'the refused unsigned signoff',
    );
    const refused = state.gates.find((g) => g.gate === 'go-live')?.refused[0];
    assert.equal(refused?.via, 'signal');
    assert.match(refused?.reason ?? '', /unsigned signoff/);
    assert.equal(state.waitingFor?.gate, 'go-live');

    await sendSignal(page, 'signoff', payload, screenshot('web-ui-signal-dialog.png'));

    const result = await handle.result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    assert.deepEqual(result.state.weights, { v1: 0, v2: 100 });
    const goLive = result.state.gates.find((g) => g.gate === 'go-live');
    assert.equal(goLive?.status, 'approved');
    assert.equal(goLive?.decidedBy, 'alice');
    assert.equal(goLive?.verified, true);
    assert.match(goLive?.fingerprint ?? '', /^SHA256:/);
    assert.equal(goLive?.via, 'signal');
    assert.equal(goLive?.note, 'signed off in the Web UI');
    assert.equal(goLive?.refused.length, 1);

    // The identity rule of docs/approvals-web-ui.md: the UI sends the payload and no identity of the person; the
    // signature inside the payload is what proves who decided.
    const signals = ((await handle.fetchHistory()).events ?? []).flatMap((e) =>
      e.workflowExecutionSignaledEventAttributes ? [e.workflowExecutionSignaledEventAttributes] : [],
    );
    assert.equal(signals.length, 2);
    assert.equal(signals[1]?.signalName, 'signoff');
    assert.equal(signals[1]?.identity ?? '', '', 'the Web UI now sends an identity: revisit docs/approvals-web-ui.md');

    // The workflow page after the sign-off: completed, the result, and the signal with alice's payload.
    await page.setViewportSize({ width: 1400, height: 1500 });
    await page.reload();
    await page.getByRole('heading', { level: 1, name: handle.workflowId }).waitFor();
    await page.getByText('Completed', { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('menuitem', { name: /^None/ }).click();
    await page.getByRole('menuitem', { name: /^Signal/ }).click();
    await page.keyboard.press('Escape');
    await page.getByText('"outcome": "succeeded"').waitFor();
    const signalRows = page.getByRole('row', { name: /Workflow Execution Signaled Signal Name signoff/ });
    await signalRows.first().click(); // the signed one: the list is newest first, the unsigned one came before
    await page.getByText('"note": "signed off in the Web UI"').waitFor();
    const after = screenshot('web-ui-after-signoff.png');
    if (after) await page.screenshot({ path: after });
  });

  it('a signoff by someone not on the list, or a wrong payload, is recorded as refused and the deploy keeps waiting', async () => {
    const { plan, handle } = await deployWaitingAtGoLive(taskQueue);

    await openFromWorkflowList(page, plan.service, handle.workflowId);
    await sendSignal(page, 'signoff', '{"by": "mallory", "gate": "go-live", "note": "let me through"}');
    let state = await waitForState(
      handle,
      (s) => (s.gates.find((g) => g.gate === 'go-live')?.refused.length ?? 0) === 1,
      'the refused signoff by mallory',
    );
    let goLive = state.gates.find((g) => g.gate === 'go-live');
    assert.equal(goLive?.status, 'waiting');
    assert.equal(goLive?.decidedBy, undefined);
    assert.equal(goLive?.refused[0]?.by, 'unverified:mallory');
    assert.equal(goLive?.refused[0]?.via, 'signal');
    assert.match(goLive?.refused[0]?.reason ?? '', /mallory is not an approver .* \(allowed: alice, bob\)/);
    assert.equal(state.waitingFor?.gate, 'go-live');

    await sendSignal(page, 'signoff', '{"approver": "alice"}');
    state = await waitForState(
      handle,
      (s) => (s.gates.find((g) => g.gate === 'go-live')?.refused.length ?? 0) === 2,
      'the refused payload',
    );
    goLive = state.gates.find((g) => g.gate === 'go-live');
    assert.equal(goLive?.status, 'waiting');
    assert.equal(goLive?.refused[1]?.by, '?');
    assert.match(goLive?.refused[1]?.reason ?? '', /invalid signoff payload .*send \{"by": "<name>"/);
    assert.equal(state.waitingFor?.gate, 'go-live');
    assert.equal(state.outcome, undefined);

    await handle.executeUpdate(signoffUpdate, { args: [{ by: 'bob' }] });
    const result = await handle.result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    goLive = result.state.gates.find((g) => g.gate === 'go-live');
    assert.equal(goLive?.decidedBy, 'unverified:bob');
    assert.equal(goLive?.via, 'update');
    assert.deepEqual(
      goLive?.refused.map((r) => [r.by, r.via]),
      [
        ['unverified:mallory', 'signal'],
        ['?', 'signal'],
      ],
    );
  });
});
