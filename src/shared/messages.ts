import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { DeployState, GateDecision } from './deploy';

/**
 * The message vocabulary shared by deploy and rollback (and the drill's sign-off). Signals take the JSON a
 * person types into the Temporal Web UI's Signal dialog: {"by": "alice", "gate": "go-live", "note": "..."}.
 * The CLI uses the updates, whose validators refuse a decision that cannot count before it is recorded; they
 * answer with the gate's decision (never its refused attempts).
 */
export const approveSignal = defineSignal<[unknown]>('approve');
export const rejectSignal = defineSignal<[unknown]>('reject');
export const signoffSignal = defineSignal<[unknown]>('signoff');

export const approveUpdate = defineUpdate<GateDecision, [unknown]>('approveUpdate');
export const rejectUpdate = defineUpdate<GateDecision, [unknown]>('rejectUpdate');
export const signoffUpdate = defineUpdate<GateDecision, [unknown]>('signoffUpdate');

export const statusQuery = defineQuery<DeployState>('status');
