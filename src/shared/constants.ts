/** The task queue that runbook workers poll unless configured otherwise. */
export const DEFAULT_TASK_QUEUE = 'durable-runbooks';
export const DEFAULT_NAMESPACE = 'default';
