/**
 * Finding the statements of an SQL script that control the transaction it runs in (BEGIN, COMMIT, ROLLBACK...): a
 * migration file with its own BEGIN/COMMIT would commit, in the middle of the migrator's one transaction, what ran
 * before it, so that a later failure leaves part of the run applied.
 */

/** A transaction-control statement of a script: its words as written (upper-cased) and its 1-based line. */
export interface TransactionControl {
  statement: string;
  line: number;
}

/** Statements that begin or end a transaction, by their first word; SAVEPOINT and ROLLBACK TO stay inside one. */
const CONTROL = new Set(['BEGIN', 'START', 'COMMIT', 'END', 'ROLLBACK', 'ABORT', 'PREPARE']);

/** For a first word whose second decides (undefined: the statement ended): whether it is transaction control. */
const DECIDED_BY_SECOND: Record<string, ((second: string | undefined) => boolean) | undefined> = {
  START: (second) => second === 'TRANSACTION',
  PREPARE: (second) => second === 'TRANSACTION', // PREPARE name AS ... is a prepared statement
  ROLLBACK: (second) => second !== 'TO', // ROLLBACK TO SAVEPOINT stays in the transaction
};

/**
 * The first top-level transaction-control statement of `sql`, if any. Comments (nested block comments too), quoted
 * strings and identifiers, and dollar-quoted bodies (PL/pgSQL's BEGIN ... END) are skipped, and the END of a
 * `BEGIN ATOMIC` function body is not mistaken for one. `PREPARE name AS ...` (a prepared statement) is not one;
 * `PREPARE TRANSACTION` is.
 */
export function findTransactionControl(sql: string): TransactionControl | undefined {
  let i = 0;
  let line = 1;
  let atStart = true; // the next word is a statement's first
  let pending: { word: string; line: number } | undefined; // a first word whose second decides
  let atomic = 0; // open BEGIN ATOMIC bodies
  let previousWord = '';
  const advance = (to: number) => {
    for (; i < to && i < sql.length; i++) if (sql[i] === '\n') line++;
  };
  /** The statement `pending` began is one, given its second word (undefined: it ended there). */
  const decide = (second: string | undefined): TransactionControl | undefined => {
    const found = pending && DECIDED_BY_SECOND[pending.word]?.(second) ? pending : undefined;
    pending = undefined;
    return (
      found && {
        statement: second && found.word !== 'ROLLBACK' ? `${found.word} ${second}` : found.word,
        line: found.line,
      }
    );
  };
  const other = () => {
    atStart = false;
    previousWord = '';
    return decide('');
  };
  while (i < sql.length) {
    const c = sql[i]!;
    const two = sql.slice(i, i + 2);
    const dollar = c === '$' ? /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 70))?.[0] : undefined;
    let found: TransactionControl | undefined;
    if (two === '--') {
      const end = sql.indexOf('\n', i);
      advance(end < 0 ? sql.length : end);
    } else if (two === '/*') {
      let depth = 0;
      let j = i;
      do {
        const step = sql.slice(j, j + 2);
        depth += step === '/*' ? 1 : step === '*/' ? -1 : 0;
        j += step === '/*' || step === '*/' ? 2 : 1;
      } while (depth > 0 && j < sql.length);
      advance(j);
    } else if (c === "'" || c === '"') {
      found = other();
      const escapes = c === "'" && /(^|[^A-Za-z0-9_$])[Ee]$/.test(sql.slice(Math.max(0, i - 2), i)); // E'...\''
      let j = i + 1;
      for (; j < sql.length; j++) {
        if (escapes && sql[j] === '\\') j++;
        else if (sql[j] === c) {
          if (sql[j + 1] !== c) break;
          j++;
        }
      }
      advance(j + 1);
    } else if (dollar) {
      found = other();
      const end = sql.indexOf(dollar, i + dollar.length);
      advance(end < 0 ? sql.length : end + dollar.length);
    } else if (c === ';') {
      found = decide(undefined);
      atStart = true;
      previousWord = '';
      advance(i + 1);
    } else if (/[A-Za-z_]/.test(c)) {
      const word = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(sql.slice(i))![0].toUpperCase();
      if (pending) found = decide(word);
      else if (atStart && word === 'END' && atomic > 0) atomic--;
      else if (atStart && CONTROL.has(word)) {
        if (DECIDED_BY_SECOND[word]) pending = { word, line };
        else found = { statement: word, line };
      } else if (previousWord === 'BEGIN' && word === 'ATOMIC') atomic++;
      previousWord = word;
      atStart = false;
      advance(i + word.length);
    } else {
      if (!/\s/.test(c)) found = other();
      advance(i + 1);
    }
    if (found) return found;
  }
  return decide(undefined);
}
