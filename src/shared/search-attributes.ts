// @temporalio/common is the deterministic base that @temporalio/workflow itself is built on.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * Custom search attributes that runbook workflows upsert, so that operators can find deploys, rollbacks and
 * drills in the Temporal UI and with `runbook list`. The embedded dev server registers them at start.
 */
export const RunbookService = defineSearchAttributeKey('RunbookService', SearchAttributeType.KEYWORD);
export const RunbookEnvironment = defineSearchAttributeKey('RunbookEnvironment', SearchAttributeType.KEYWORD);
/** deploy | rollback | drill | stack-check */
export const RunbookKind = defineSearchAttributeKey('RunbookKind', SearchAttributeType.KEYWORD);
export const RunbookPhase = defineSearchAttributeKey('RunbookPhase', SearchAttributeType.KEYWORD);
export const RunbookOutcome = defineSearchAttributeKey('RunbookOutcome', SearchAttributeType.KEYWORD);
/** Recovery time objective measured by a restore drill, in seconds. */
export const RunbookRtoSeconds = defineSearchAttributeKey('RunbookRtoSeconds', SearchAttributeType.DOUBLE);

export const runbookSearchAttributes = [
  RunbookService,
  RunbookEnvironment,
  RunbookKind,
  RunbookPhase,
  RunbookOutcome,
  RunbookRtoSeconds,
] as const;

/** The type names the Temporal CLI's `--search-attribute KEY=TYPE` flag takes. */
export const cliSearchAttributeType: Record<string, string> = {
  KEYWORD: 'Keyword',
  TEXT: 'Text',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};
