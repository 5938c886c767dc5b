/** The task queue that runbook workers poll unless configured otherwise. */
export const DEFAULT_TASK_QUEUE = 'durable-runbooks';
export const DEFAULT_NAMESPACE = 'default';

/**
 * The task queue of the step-long watches (the canary cut-off's watchCutoff) of the runbooks on `taskQueue`: every
 * worker polls it too, with slots of its own, so that watches never take the slots the runbooks' steps need.
 */
export const watchQueueOf = (taskQueue: string) => `${taskQueue}-watch`;
