#!/usr/bin/env node
// verify.mjs checks a takedown exhibit (the folder `takedown evidence
// export` writes) from its files and the formats of docs/exhibit.md alone,
// with nothing but node.js's standard library: SHA-256 and Ed25519 from
// node:crypto. It is a second, independent verifier: it shares no code with
// takedown's own `evidence verify`.
//
//   node verify.mjs FOLDER [--key NAME+HASH+BASE64] [--json]
//
// It exits 0 and prints "verified: …" when every check passes, and 1 with
// one line per finding (file, line, leaf, checkpoint) when any fails; 2 on
// wrong usage.
import { createHash, createPublicKey, verify as edVerify } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const findings = [];
function find(file, reason, { line = 0, leaf = -1, checkpoint = -1 } = {}) {
  findings.push({ file, line, leaf, checkpoint, reason });
}

const sha256 = (...parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const hex = (b) => Buffer.from(b).toString('hex');

// ---- arguments
const args = process.argv.slice(2);
let dir = '', expectKey = '', asJSON = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--key') expectKey = (args[++i] ?? '').trim();
  else if (args[i] === '--json') asJSON = true;
  else if (!dir) dir = args[i];
  else { console.error(`verify.mjs: unexpected argument ${args[i]}`); process.exit(2); }
}
if (!dir) { console.error('usage: node verify.mjs FOLDER [--key NAME+HASH+BASE64] [--json]'); process.exit(2); }

// ---- every file of the folder, by its '/' path
const files = new Map();
try {
  if (!statSync(dir).isDirectory()) throw new Error('not a folder');
} catch (e) {
  console.error(`verify.mjs: ${dir}: ${e.message}`);
  process.exit(2);
}
(function walk(d) {
  for (const ent of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, ent.name);
    const rel = relative(dir, p).split(sep).join('/');
    if (ent.isDirectory()) walk(p);
    else if (ent.isFile()) files.set(rel, readFileSync(p));
    else find(rel, 'not a regular file');
  }
})(dir);
const text = (p) => files.get(p)?.toString('utf8');

// ---- the key: NAME+HASH+BASE64(0x01 ‖ 32-byte Ed25519 public key)
function parseKey(k) {
  // The base64 may hold '+' too: split at the first two only.
  const m = /^([^+]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(k);
  if (!m) return null;
  const parts = m.slice(1);
  const raw = Buffer.from(parts[2], 'base64');
  if (raw.length !== 33 || raw[0] !== 1) return null;
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw.subarray(1)]);
  // The key hash is the first 4 bytes of SHA-256(name, "\n", the key bytes).
  const want = sha256(Buffer.from(parts[0] + '\n'), raw).subarray(0, 4);
  if (hex(want) !== parts[1]) return null;
  return { name: parts[0], hash: want, pub: createPublicKey({ key: spki, format: 'der', type: 'spki' }) };
}
let keyText = (text('key.pub') ?? '').replace(/\n$/, '');
if (!files.has('key.pub')) find('key.pub', 'missing: the log\'s verifier key');
if (expectKey) {
  if (files.has('key.pub') && keyText !== expectKey) find('key.pub', `the key ${keyText} is not the expected key ${expectKey}`);
  keyText = expectKey;
}
const key = keyText ? parseKey(keyText) : null;
if (keyText && !key) find(expectKey ? '--key' : 'key.pub', `${JSON.stringify(keyText)} is not an Ed25519 note verifier key`);

// openNote checks a signed note's signature by the key and returns its text.
function openNote(file, buf, where = {}) {
  const msg = buf.toString('utf8');
  const split = msg.lastIndexOf('\n\n');
  if (split < 0 || !msg.endsWith('\n')) { find(file, 'not a signed note: no blank line before the signatures', where); return null; }
  const body = msg.slice(0, split + 1);
  if (!key) return null;
  for (const line of msg.slice(split + 2, -1).split('\n')) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) { find(file, `signature line ${JSON.stringify(line)} is not "— NAME BASE64"`, where); return null; }
    const sig = Buffer.from(m[2], 'base64');
    if (m[1] !== key.name || sig.length !== 68 || !sig.subarray(0, 4).equals(key.hash)) continue;
    if (edVerify(null, Buffer.from(body, 'utf8'), key.pub, sig.subarray(4))) return body;
    find(file, 'the signature is wrong: the text was changed after signing', where);
    return null;
  }
  find(file, `no signature by the key ${key.name}`, where);
  return null;
}

// ---- RFC 9162 hashing
const leafHash = (data) => sha256(Buffer.from([0]), data);
const nodeHash = (l, r) => sha256(Buffer.from([1]), l, r);

// RFC 9162 section 2.1.3.2: an inclusion proof.
function checkInclusion(index, size, hash, path, root) {
  if (index >= size) return false;
  let fn = index, sn = size - 1n, r = hash;
  for (const p of path) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n && r.equals(root);
}

// RFC 9162 section 2.1.4.2: a consistency proof.
function checkConsistency(first, second, firstRoot, secondRoot, path) {
  if (first === second) return path.length === 0 && firstRoot.equals(secondRoot);
  if (first === 0n) return path.length === 0;
  if (first > second || path.length === 0) return false;
  if ((first & (first - 1n)) === 0n) path = [firstRoot, ...path];
  let fn = first - 1n, sn = second - 1n;
  while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr); sr = nodeHash(c, sr);
      if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return fr.equals(firstRoot) && sr.equals(secondRoot) && sn === 0n;
}

// A proof file: a header line, two "NAME N" lines, then base64 hashes.
function parseProof(file, header, a, b) {
  const t = text(file);
  if (t === undefined) return null;
  const lines = t.split('\n');
  if (lines.pop() !== '' || lines[0] !== header) { find(file, `not a proof: the first line is not ${header} or the last line has no newline`); return null; }
  const num = (line, name) => { const m = new RegExp(`^${name} (0|[1-9][0-9]*)$`).exec(line ?? ''); return m ? BigInt(m[1]) : null; };
  const x = num(lines[1], a), y = num(lines[2], b);
  if (x === null || y === null) { find(file, `lines 2 and 3 are not "${a} N" and "${b} N"`); return null; }
  const hashes = [];
  for (const [i, l] of lines.slice(3).entries()) {
    const h = Buffer.from(l, 'base64');
    if (h.length !== 32 || h.toString('base64') !== l) { find(file, 'not a base64 SHA-256 hash', { line: i + 4 }); return null; }
    hashes.push(h);
  }
  return { a: x, b: y, hashes };
}

// ---- the manifest: "HEX  PATH" lines
const exempt = new Set(['MANIFEST.sha256', 'MANIFEST.sha256.note', 'summary.html']);
const listed = new Set();
let nfiles = 0;
if (!files.has('MANIFEST.sha256')) find('MANIFEST.sha256', 'missing');
else {
  const lines = text('MANIFEST.sha256').split('\n');
  if (lines.pop() !== '') find('MANIFEST.sha256', 'the last line has no newline');
  lines.forEach((line, i) => {
    const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
    if (!m) { find('MANIFEST.sha256', 'not "HEX  PATH"', { line: i + 1 }); return; }
    listed.add(m[2]);
    nfiles++;
    if (exempt.has(m[2])) find('MANIFEST.sha256', `lists ${m[2]}`, { line: i + 1 });
    else if (!files.has(m[2])) find(m[2], `missing: the manifest lists it (line ${i + 1})`);
    else if (hex(sha256(files.get(m[2]))) !== m[1]) find(m[2], `SHA-256 differs from the manifest's (line ${i + 1}): the file was changed`);
  });
  for (const p of [...files.keys()].sort()) if (!listed.has(p) && !exempt.has(p)) find(p, 'not in the manifest: added after the exhibit was made');
}
let caseName = '';
if (!files.has('MANIFEST.sha256.note')) find('MANIFEST.sha256.note', 'missing');
else {
  const body = openNote('MANIFEST.sha256.note', files.get('MANIFEST.sha256.note'));
  if (body !== null) {
    const m = /^takedown-exhibit\/manifest\/v1\ncase (\S+)\nMANIFEST\.sha256 ([0-9a-f]{64})\nsummary\.html ([0-9a-f]{64})\n$/.exec(body);
    if (!m) find('MANIFEST.sha256.note', 'the text is not the header, the case and the two hashes');
    else {
      caseName = m[1];
      for (const [f, h] of [['MANIFEST.sha256', m[2]], ['summary.html', m[3]]]) {
        if (!files.has(f)) find(f, 'missing');
        else if (hex(sha256(files.get(f))) !== h) find(f, 'SHA-256 differs from the signed note\'s: the file was changed');
      }
    }
  }
}

// ---- checkpoints: origin, size, base64 root, "time …", signed by the key
const cps = [];
for (const p of [...files.keys()].sort()) {
  const m = /^checkpoints\/(0|[1-9][0-9]*)\.note$/.exec(p);
  if (!m) { if (p.startsWith('checkpoints/')) find(p, 'not a checkpoint\'s name: SIZE.note'); continue; }
  const size = BigInt(m[1]);
  const body = openNote(p, files.get(p), { checkpoint: Number(size) });
  if (body === null) continue;
  const l = /^([^\n]+)\n(0|[1-9][0-9]*)\n([A-Za-z0-9+/=]{44})\ntime (\S+)\n$/.exec(body);
  if (!l || BigInt(l[2]) !== size) { find(p, 'the body is not origin, this size, root and time', { checkpoint: Number(size) }); continue; }
  cps.push({ path: p, origin: l[1], size, root: Buffer.from(l[3], 'base64'), time: l[4] });
}
cps.sort((a, b) => (a.size < b.size ? -1 : a.size > b.size ? 1 : 0));
const cp = cps.at(-1);
if (!cp) find('checkpoints', 'no valid checkpoint');
let earlier = 0;
const consistency = new Set();
for (const old of cps.slice(0, -1)) {
  const p = `proofs/${old.size}-${cp.size}.consistency`;
  consistency.add(p);
  if (!files.has(p)) { find(p, `missing: no proof that checkpoint ${old.size} is consistent with ${cp.size}`, { checkpoint: Number(old.size) }); continue; }
  const pr = parseProof(p, 'takedown-evidence/consistency/v1', 'old', 'new');
  if (!pr) continue;
  if (pr.a !== old.size || pr.b !== cp.size || !checkConsistency(old.size, cp.size, old.root, cp.root, pr.hashes)) {
    find(p, `checkpoint ${old.size} is not consistent with checkpoint ${cp.size}: the log was forked or rewritten`, { checkpoint: Number(old.size) });
    continue;
  }
  if (old.origin !== cp.origin) find(old.path, `origin ${old.origin} is not ${cp.origin}`, { checkpoint: Number(old.size) });
  earlier++;
}
for (const p of files.keys()) if (p.startsWith('proofs/') && p.endsWith('.consistency') && !consistency.has(p)) find(p, 'proves no checkpoint of the exhibit');

// inclusion checks that data is leaf index of the checkpoint's tree.
function inclusion(file, proofFile, index) {
  const pr = parseProof(proofFile, 'takedown-evidence/inclusion/v1', 'index', 'size');
  if (!pr) { if (!files.has(proofFile)) find(proofFile, `missing: no inclusion proof for ${file}`); return false; }
  if (index !== null && pr.a !== index) { find(proofFile, `proves leaf ${pr.a}, not ${index}`, { leaf: Number(index) }); return false; }
  if (!cp) return false;
  if (pr.b !== cp.size || !checkInclusion(pr.a, cp.size, leafHash(files.get(file)), pr.hashes, cp.root)) {
    find(file, `not included in checkpoint ${cp.size}: the leaf, its proof or the checkpoint was changed`, { leaf: Number(pr.a), checkpoint: Number(cp.size) });
    return false;
  }
  return true;
}

// ---- batch leaves: the header, then sorted lowercase hex hashes
const eventHashes = new Set();
const proven = new Set();
let nleaves = 0;
for (const p of [...files.keys()].sort()) {
  const m = /^leaves\/(0|[1-9][0-9]*)\.txt$/.exec(p);
  if (!m) { if (p.startsWith('leaves/')) find(p, 'not a leaf\'s name: INDEX.txt'); continue; }
  const idx = BigInt(m[1]);
  const proof = `proofs/${idx}.inclusion`;
  proven.add(proof);
  const lines = text(p).split('\n');
  const ok = lines.pop() === '' && lines[0] === 'takedown-evidence/batch/v1' &&
    lines.slice(1).every((l, i, a) => /^[0-9a-f]{64}$/.test(l) && (i === 0 || a[i - 1] <= l));
  if (!ok) { find(p, 'not a batch leaf: the header, then sorted lowercase hex SHA-256 hashes, one per line', { leaf: Number(idx) }); continue; }
  if (!inclusion(p, proof, idx)) continue;
  for (const h of lines.slice(1)) eventHashes.add(h);
  nleaves++;
}
for (const p of files.keys()) if (p.startsWith('proofs/') && p.endsWith('.inclusion') && !proven.has(p)) find(p, 'proves no leaf of the exhibit');

// ---- audit leaves: the chain hash is SHA-256 of the data after the header
let caseFile = null;
try { caseFile = JSON.parse(text('case.json') ?? 'null'); } catch (e) { find('case.json', `not JSON: ${e.message}`); }
const auditHash = new Map((caseFile?.audit ?? []).map((e) => [String(e.seq), e.hash]));
let naudit = 0;
for (const p of [...files.keys()].sort()) {
  const m = /^audit\/(0|[1-9][0-9]*)\.txt$/.exec(p);
  if (!m) continue;
  const data = files.get(p);
  const header = Buffer.from('takedown-evidence/audit/v1\n');
  if (!data.subarray(0, header.length).equals(header)) { find(p, 'not an audit leaf'); continue; }
  const chain = hex(sha256(data.subarray(header.length)));
  if (auditHash.get(m[1]) !== chain) find(p, `chain hash ${chain} is not case.json's hash of audit entry ${m[1]}`);
  if (inclusion(p, `audit/${m[1]}.inclusion`, null)) naudit++;
}

// ---- events: each line's SHA-256 (without its newline) is in a leaf
let nevents = 0;
const ev = files.get('events.jsonl');
if (!ev) find('events.jsonl', 'missing');
else {
  const lines = ev.toString('utf8').split('\n');
  if (lines.pop() !== '') find('events.jsonl', 'the last line has no newline');
  lines.forEach((line, i) => {
    nevents++;
    const h = hex(sha256(Buffer.from(line, 'utf8')));
    if (!eventHashes.has(h)) find('events.jsonl', `event hash ${h} is in no leaf of the exhibit: the event was changed or added`, { line: i + 1 });
  });
}

// ---- report
const name = (f) => {
  let s = f.file + (f.line ? `:${f.line}` : '');
  const what = [];
  if (f.leaf >= 0) what.push(`leaf ${f.leaf}`);
  if (f.checkpoint >= 0) what.push(`checkpoint ${f.checkpoint}`);
  return s + (what.length ? ` (${what.join(', ')})` : '') + ': ' + f.reason;
};
if (asJSON) {
  console.log(JSON.stringify({ dir, case: caseName, files: nfiles, events: nevents, leaves: nleaves, audit_leaves: naudit,
    checkpoint: cp ? { origin: cp.origin, size: Number(cp.size), root: cp.root.toString('base64'), time: cp.time } : null,
    earlier_checkpoints: earlier, findings }, null, 2));
} else if (findings.length) {
  for (const f of findings) console.log(name(f));
  console.log(`${dir}: ${findings.length} finding(s); the exhibit does not verify`);
} else {
  console.log(`verified: ${dir}: case ${caseName}, ${nfiles} files, ${nevents} events in ${nleaves} leaves, ${naudit} audit leaves, ` +
    `all included in checkpoint ${cp.size} (root ${cp.root.toString('base64')}, ${cp.time}) of ${cp.origin}, ${earlier} earlier checkpoint(s) consistent with it`);
}
process.exit(findings.length ? 1 : 0);
