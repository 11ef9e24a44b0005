// duckdb_check.mjs: DuckDB as the independent Parquet implementation that
// test_parquet_duckdb.c checks our snapshot writer and reader against.
//
//   node duckdb_check.mjs read FILE
//     Reads FILE with DuckDB (read_parquet, in file row order) and prints
//     JSON lines: first {"rows", "columns": [{name, type}], "kv": {...},
//     "chunks": [{column, encodings, compression}]}, then one line per row:
//     {"id", "vector": hex, "attributes", "cols": {name: value}}. Exact
//     forms: a vector is the float32 bit patterns as 8 hex digits each
//     (most significant first), a DOUBLE is its 16 hex-digit bit pattern,
//     a BIGINT a decimal string, lists are arrays, NULL is null.
//
//   node duckdb_check.mjs write IN.jsonl OUT.parquet [COMPRESSION] [V1|V2] [ROW_GROUP_SIZE]
//     Writes a Parquet file with DuckDB from rows in the same exact forms
//     (one JSON object per line: id, vector, attributes and the typed
//     columns title VARCHAR, year BIGINT, price DOUBLE, ok BOOLEAN,
//     tags VARCHAR[], nums BIGINT[]), then prints {"written": n}.
//
// @duckdb/node-api is looked up in $TDB_NODE_PEERS (default: build-peers
// at the repository root), where scripts/test-peers.sh installs it.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const peers = process.env.TDB_NODE_PEERS || path.join(here, '..', '..', 'build-peers');
let duckdb;
try {
  duckdb = createRequire(path.join(peers, 'package.json'))('@duckdb/node-api');
} catch (e) {
  process.stderr.write(`duckdb_check: cannot load @duckdb/node-api from ${peers}/node_modules ` +
    `(run scripts/test-peers.sh): ${e.message}\n`);
  process.exit(3);
}
const { DuckDBInstance, LIST, FLOAT, VARCHAR, BIGINT } = duckdb;

function floatHex(x) {
  const f = new Float32Array(1);
  f[0] = x;
  return new Uint32Array(f.buffer)[0].toString(16).padStart(8, '0');
}
function doubleHex(x) {
  const b = new BigUint64Array(new Float64Array([x]).buffer);
  return b[0].toString(16).padStart(16, '0');
}
function hexFloats(hex) {
  const n = hex.length / 8;
  const u = new Uint32Array(n);
  for (let i = 0; i < n; i++) u[i] = parseInt(hex.slice(8 * i, 8 * i + 8), 16);
  return Array.from(new Float32Array(u.buffer));
}
function hexDouble(hex) {
  return new Float64Array(new BigUint64Array([BigInt('0x' + hex)]).buffer)[0];
}
const sqlString = (s) => "'" + s.replace(/'/g, "''") + "'";

// A DuckDB value as our exact JSON form.
function exact(v, type) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return type === 'FLOAT' ? floatHex(v) : doubleHex(v);
  if (typeof v === 'boolean' || typeof v === 'string') return v;
  if (v.items) {
    const inner = type.endsWith('[]') ? type.slice(0, -2) : type;
    return v.items.map((x) => exact(x, inner));
  }
  return String(v);
}

async function read(file) {
  const inst = await DuckDBInstance.create(':memory:');
  const con = await inst.connect();
  const f = sqlString(file);
  const desc = await con.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${f})`);
  const columns = desc.getRowObjectsJson().map((r) => ({ name: r.column_name, type: r.column_type }));
  const kvr = await con.runAndReadAll(`SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata(${f})`);
  const kv = {};
  for (const r of kvr.getRowObjectsJson()) kv[r.k] = r.v;
  const meta = await con.runAndReadAll(
    `SELECT path_in_schema, encodings, compression FROM parquet_metadata(${f}) ORDER BY row_group_id, column_id`);
  const chunks = meta.getRowObjectsJson().map((r) => ({ column: r.path_in_schema, encodings: r.encodings,
    compression: r.compression }));
  const res = await con.runAndReadAll(
    `SELECT * EXCLUDE (file_row_number) FROM read_parquet(${f}, file_row_number = true) ORDER BY file_row_number`);
  const rows = res.getRowObjects();
  const out = [JSON.stringify({ rows: rows.length, columns, kv, chunks })];
  for (const r of rows) {
    const cols = {};
    for (const c of columns) {
      if (c.name === 'id' || c.name === 'vector' || c.name === 'attributes') continue;
      cols[c.name] = exact(r[c.name], c.type);
    }
    const vec = r.vector === null ? null : r.vector.items.map((x) => floatHex(x)).join('');
    out.push(JSON.stringify({ id: r.id, vector: vec, attributes: r.attributes, cols }));
  }
  process.stdout.write(out.join('\n') + '\n');
}

async function write(input, file, compression, version, rowGroupSize) {
  const inst = await DuckDBInstance.create(':memory:');
  const con = await inst.connect();
  await con.run(`CREATE TABLE t (id VARCHAR, vector FLOAT[], title VARCHAR, year BIGINT, price DOUBLE,
                 ok BOOLEAN, tags VARCHAR[], nums BIGINT[], attributes VARCHAR)`);
  const app = await con.createAppender('t');
  const lines = fs.readFileSync(input, 'utf8').split('\n').filter((l) => l.length > 0);
  for (const line of lines) {
    const r = JSON.parse(line);
    app.appendVarchar(r.id);
    app.appendList(hexFloats(r.vector), LIST(FLOAT));
    if (r.title === null) app.appendNull(); else app.appendVarchar(r.title);
    if (r.year === null) app.appendNull(); else app.appendBigInt(BigInt(r.year));
    if (r.price === null) app.appendNull(); else app.appendDouble(hexDouble(r.price));
    if (r.ok === null) app.appendNull(); else app.appendBoolean(r.ok);
    if (r.tags === null) app.appendNull(); else app.appendList(r.tags, LIST(VARCHAR));
    if (r.nums === null) app.appendNull(); else app.appendList(r.nums.map((x) => BigInt(x)), LIST(BIGINT));
    app.appendVarchar(r.attributes);
    app.endRow();
  }
  app.closeSync();
  const opts = [`FORMAT parquet`, `COMPRESSION ${compression}`, `PARQUET_VERSION ${version}`];
  if (rowGroupSize) opts.push(`ROW_GROUP_SIZE ${rowGroupSize}`);
  await con.run(`COPY (SELECT * FROM t) TO ${sqlString(file)} (${opts.join(', ')})`);
  process.stdout.write(JSON.stringify({ written: lines.length }) + '\n');
}

const [cmd, a, b, compression = 'snappy', version = 'V1', rowGroupSize] = process.argv.slice(2);
try {
  if (cmd === 'read' && a) await read(a);
  else if (cmd === 'write' && a && b) await write(a, b, compression, version, rowGroupSize);
  else {
    process.stderr.write('usage: duckdb_check.mjs read FILE | write IN.jsonl OUT.parquet [COMPRESSION] [V1|V2] [ROWS]\n');
    process.exit(2);
  }
} catch (e) {
  process.stderr.write(`duckdb_check: ${e.stack || e}\n`);
  process.exit(1);
}
