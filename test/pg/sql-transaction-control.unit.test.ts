import assert from 'node:assert/strict';
import { findTransactionControl } from '../../src/pg/sql-transaction-control';

describe('findTransactionControl: BEGIN/COMMIT in a migration file', () => {
  it('finds top-level transaction control, with its line', () => {
    assert.deepEqual(findTransactionControl('BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;'), {
      statement: 'BEGIN',
      line: 1,
    });
    assert.deepEqual(findTransactionControl('CREATE TABLE a (id int);\n\ncommit;\n'), { statement: 'COMMIT', line: 3 });
    assert.deepEqual(findTransactionControl('-- schema\nSTART TRANSACTION;'), {
      statement: 'START TRANSACTION',
      line: 2,
    });
    assert.deepEqual(findTransactionControl('SELECT 1;\nEND'), { statement: 'END', line: 2 });
    assert.deepEqual(findTransactionControl('SELECT 1; ROLLBACK;'), { statement: 'ROLLBACK', line: 1 });
    assert.deepEqual(findTransactionControl('SELECT 1;\nabort'), { statement: 'ABORT', line: 2 });
    assert.deepEqual(findTransactionControl("PREPARE TRANSACTION 'x';"), { statement: 'PREPARE TRANSACTION', line: 1 });
  });

  it('skips comments, strings, dollar-quoted bodies, BEGIN ATOMIC bodies, savepoints and prepared statements', () => {
    const sql = `
      /* BEGIN; /* nested */ COMMIT; */
      -- COMMIT;
      CREATE TABLE "commit" (note text DEFAULT 'x;
      COMMIT;');
      INSERT INTO "commit" VALUES (E'it\\'s;
      COMMIT;');
      CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $body$
      BEGIN
        PERFORM 1;
      END;
      $body$;
      DO $$ BEGIN RAISE NOTICE 'x'; END $$;
      CREATE FUNCTION g() RETURNS int LANGUAGE sql
      BEGIN ATOMIC
        SELECT 1;
      END;
      SAVEPOINT s; ROLLBACK TO SAVEPOINT s; ROLLBACK TO s; RELEASE SAVEPOINT s;
      PREPARE q AS SELECT 1;
      SELECT 1 WHERE CASE WHEN true THEN true END;
      COMMENT ON TABLE "commit" IS 'BEGIN';`;
    assert.equal(findTransactionControl(sql), undefined);
    assert.equal(findTransactionControl(''), undefined);
  });
});
