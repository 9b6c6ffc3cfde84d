import Foundation
import Hummingbird

/// The explorer's two assets, shipped inside the binary: the stylesheet and the script that
/// verifies an invoice in the browser. Paths carry a version so browsers may cache them.
enum ExplorerAssets {
    static let stylesheetPath = "/assets/explorer-1.css"
    static let verifierPath = "/assets/verify-1.js"

    static func response(_ text: String, contentType: String) -> Response {
        let data = Data(text.utf8)
        return Response(status: .ok,
                        headers: [.contentType: contentType, .contentLength: String(data.count), .cacheControl: "public, max-age=86400"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static let stylesheet = #"""
    :root {
      --ink: #1c2430; --muted: #5d6878; --line: #dfe4ea; --paper: #f6f7f9; --card: #ffffff;
      --accent: #1f5fbf; --accent-soft: #e8f0fc; --ok: #1d7a46; --ok-soft: #e3f4ea; --bad: #b3261e; --bad-soft: #fbe9e7;
      --warn: #8a5a00; --warn-soft: #fdf2dc;
      --mono: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace;
    }
    * { box-sizing: border-box; }
    html { -webkit-text-size-adjust: 100%; }
    body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif;
           color: var(--ink); background: var(--paper); }
    a { color: var(--accent); text-decoration-thickness: 1px; text-underline-offset: 2px; }
    a:hover { text-decoration-thickness: 2px; }
    :focus-visible { outline: 3px solid #f0b429; outline-offset: 2px; border-radius: 3px; }
    .skip { position: absolute; left: -999px; top: 8px; background: var(--card); padding: 8px 12px; z-index: 2; }
    .skip:focus { left: 8px; }
    .top { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 20px; padding: 10px max(16px, calc((100% - 1120px) / 2));
           background: #16202e; color: #fff; }
    .brand { display: inline-flex; align-items: center; gap: 8px; color: #fff; font-weight: 700; font-size: 18px; text-decoration: none; }
    .brand svg { fill: #8fb8ff; stroke: #8fb8ff; }
    .top nav ul { display: flex; flex-wrap: wrap; gap: 2px 4px; list-style: none; margin: 0; padding: 0; }
    .top nav a { display: block; padding: 6px 10px; border-radius: 6px; color: #d5def0; text-decoration: none; font-size: 15px; }
    .top nav a:hover { background: #243247; color: #fff; }
    .top nav a[aria-current="page"] { background: #2d4263; color: #fff; }
    main { max-width: 1120px; margin: 0 auto; padding: 20px 16px 8px; outline: none; }
    h1 { font-size: 28px; line-height: 1.25; margin: 8px 0 8px; overflow-wrap: anywhere; }
    h2 { font-size: 19px; margin: 0 0 12px; }
    h3 { font-size: 16px; margin: 18px 0 8px; }
    .lead { font-size: 17px; color: var(--muted); margin: 0 0 18px; max-width: 60em; }
    .crumbs { margin: 0; color: var(--muted); font-size: 14px; }
    .muted { color: var(--muted); }
    .small { font-size: 13px; }
    .card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; margin: 16px 0;
            box-shadow: 0 1px 2px rgba(20, 30, 50, .04); }
    .tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 8px 0 4px; }
    .tile { display: flex; flex-direction: column; background: var(--card); border: 1px solid var(--line); border-radius: 10px;
            padding: 14px 16px; text-decoration: none; color: var(--ink); }
    .tile strong { font-size: 30px; line-height: 1.1; color: var(--accent); }
    .tile span { color: var(--muted); }
    .tile:hover { border-color: var(--accent); }
    .facts { display: grid; grid-template-columns: minmax(120px, max-content) 1fr; gap: 0; margin: 4px 0 12px; }
    .facts > div { display: contents; }
    .facts dt { color: var(--muted); padding: 6px 16px 6px 0; border-top: 1px solid var(--line); font-size: 14px; }
    .facts dd { margin: 0; padding: 6px 0; border-top: 1px solid var(--line); overflow-wrap: anywhere; min-width: 0; }
    .facts .facts { margin: 0; }
    .scroll, .graph { overflow-x: auto; max-width: 100%; }
    table { border-collapse: collapse; width: 100%; font-size: 15px; }
    caption { text-align: left; color: var(--muted); font-size: 13px; padding-bottom: 4px; }
    th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-size: 13px; color: var(--muted); font-weight: 600; white-space: nowrap; background: #fafbfc; }
    td.num, th.num { text-align: right; white-space: nowrap; }
    tbody tr:hover { background: #fafcff; }
    code, .hash { font-family: var(--mono); font-size: 13.5px; }
    .hash { background: #f1f3f6; padding: 1px 5px; border-radius: 4px; }
    .hash.full { overflow-wrap: anywhere; word-break: break-all; }
    data.amount { font-variant-numeric: tabular-nums; font-weight: 600; white-space: nowrap; }
    .badge { display: inline-block; font-size: 12px; font-weight: 600; padding: 2px 8px; border-radius: 999px; background: #eef1f5;
             color: var(--muted); vertical-align: middle; white-space: nowrap; }
    .badge.ok { background: var(--ok-soft); color: var(--ok); }
    .badge.warn { background: var(--warn-soft); color: var(--warn); }
    .warn-text { color: var(--warn); }
    .chain { margin: 0; padding-left: 20px; }
    .plain { padding-left: 20px; }
    .level { border-left: 3px solid var(--accent-soft); padding-left: 12px; margin: 14px 0; }
    .total { text-align: right; margin: 8px 10px 0; }
    .pager { display: flex; gap: 16px; align-items: center; margin: 12px 0; }
    .jump { margin: 0 0 12px; display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
    input, button { font: inherit; }
    input { padding: 5px 8px; border: 1px solid #b8c2cf; border-radius: 6px; }
    button { padding: 7px 14px; border-radius: 7px; border: 1px solid var(--accent); background: var(--accent); color: #fff;
             font-weight: 600; cursor: pointer; }
    button:hover { background: #174c99; }
    button[disabled] { opacity: .6; cursor: progress; }
    pre.note { background: #10161f; color: #d8e2f0; padding: 12px 14px; border-radius: 8px; overflow-x: auto; font-size: 13px; }
    .foot { max-width: 1120px; margin: 8px auto 24px; padding: 0 16px; color: var(--muted); font-size: 13px; }
    /* The in-browser verification */
    .verify { border-color: #c9d8f2; background: linear-gradient(#fbfdff, #fff); }
    .steps { list-style: none; padding: 0; margin: 14px 0 8px; counter-reset: step; }
    .steps li { display: flex; gap: 12px; padding: 10px 0; border-top: 1px solid var(--line); counter-increment: step; }
    .steps li p { margin: 2px 0 0; }
    .steps .detail { color: var(--muted); font-size: 14px; overflow-wrap: anywhere; }
    .steps .mark { flex: none; width: 28px; height: 28px; border-radius: 50%; display: grid; place-items: center; font-weight: 700;
                   background: #eef1f5; color: var(--muted); }
    .steps .mark::before { content: counter(step); }
    .steps li[data-status="running"] .mark { background: var(--accent-soft); color: var(--accent); }
    .steps li[data-status="pass"] .mark { background: var(--ok-soft); color: var(--ok); }
    .steps li[data-status="pass"] .mark::before { content: "\2713"; }
    .steps li[data-status="fail"] .mark { background: var(--bad-soft); color: var(--bad); }
    .steps li[data-status="fail"] .mark::before { content: "\2717"; }
    .steps li[data-status="fail"] .detail { color: var(--bad); }
    .steps li[data-status="skipped"] { opacity: .55; }
    #verify-result { margin: 8px 0 0; padding: 10px 14px; border-radius: 8px; font-weight: 600; overflow-wrap: anywhere; }
    #verify-result[data-status="idle"] { display: none; }
    #verify-result[data-status="running"] { background: var(--accent-soft); color: var(--accent); }
    #verify-result[data-status="pass"] { background: var(--ok-soft); color: var(--ok); }
    #verify-result[data-status="fail"] { background: var(--bad-soft); color: var(--bad); }
    /* Graphs drawn on the server */
    .graph svg { display: block; max-width: none; height: auto; }
    .g-heading { font-size: 12px; font-weight: 700; fill: var(--muted); letter-spacing: .06em; text-transform: uppercase; }
    .g-node rect { stroke-width: 1.5; }
    .g-node:focus-visible rect, .g-node:hover rect { stroke-width: 3; }
    .g-node { outline: none; }
    .g-contributor rect { fill: #fff7e6; stroke: #e0a526; }
    .g-dataset rect { fill: #eaf6ef; stroke: #3d9a67; }
    .g-model rect { fill: #e9f0fc; stroke: #3b72c9; }
    .g-title { font-size: 14px; font-weight: 700; fill: var(--ink); }
    .g-sub { font-size: 12px; fill: var(--muted); font-family: var(--mono); }
    .g-edge { fill: none; stroke: #9aa7b8; stroke-width: 1.4; }
    .g-base { stroke: #3b72c9; stroke-width: 2; stroke-dasharray: 5 4; }
    .g-label { font-size: 11px; fill: #3b72c9; font-weight: 600; }
    .arrowhead { fill: #9aa7b8; }
    .chart { margin: 0; }
    .chart-svg { display: block; width: 100%; max-width: 760px; height: auto; }
    .c-grid { stroke: var(--line); }
    .c-area { fill: var(--accent-soft); }
    .c-line { fill: none; stroke: var(--accent); stroke-width: 2.5; }
    .c-point circle { fill: #fff; stroke: var(--accent); stroke-width: 2; }
    .c-point:focus-visible circle, .c-point:hover circle { fill: var(--accent); }
    .c-label { font-size: 13px; fill: var(--muted); }
    .narrow-only { display: none; }
    @media (max-width: 960px) { .narrow-only { display: block; margin-top: -4px; } }
    @media (max-width: 600px) {
      body { font-size: 15px; }
      h1 { font-size: 23px; }
      .top { padding: 8px 12px; }
      .top nav a { padding: 4px 7px; font-size: 14px; }
      main { padding: 12px 10px 4px; }
      .card { padding: 12px; border-radius: 8px; }
      .facts { grid-template-columns: 1fr; }
      .facts dt { padding-bottom: 0; border-top: 1px solid var(--line); }
      .facts dd { border-top: none; padding-top: 0; }
      th, td { padding: 6px 7px; }
      .tile strong { font-size: 24px; }
      table.stack thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
      table.stack, table.stack tbody, table.stack tr, table.stack td { display: block; width: 100%; }
      table.stack tr { padding: 6px 0; border-bottom: 1px solid var(--line); }
      table.stack td { display: flex; gap: 12px; justify-content: space-between; align-items: baseline; border: none;
                       padding: 3px 2px; text-align: right; white-space: normal; overflow-wrap: anywhere; }
      table.stack td::before { content: attr(data-label); flex: none; color: var(--muted); font-size: 13px; font-weight: 600;
                               text-align: left; }
      table.stack td[data-label=""]::before { content: none; }
      table.stack caption { display: block; }
    }
    """#

    /// Verifies one invoice in the browser, step by step, with WebCrypto only (SHA-256 and
    /// Ed25519). It fetches the invoice's canonical bytes, the latest checkpoint and the
    /// inclusion proof from the public API; the page's own text is never trusted.
    static let verifier = #"""
    // Provenance explorer: verify an AI invoice in the browser.
    //
    // 1. Invoice bytes:        GET /v1/invoices/N/canonical (the exact bytes the ledger hashed).
    // 2. Leaf hash:            SHA-256(0x00 || bytes), compared with leaf N of the ledger.
    // 3. Inclusion proof:      RFC 9162 section 2.1.3.2, from our own leaf hash up to a root, compared
    //                          with the root in the signed checkpoint.
    // 4. Checkpoint signature: the C2SP signed note's Ed25519 signature by the registry's key
    //                          (verifier key <name>+<key id>+base64(0x01 || public key)).
    'use strict';
    (function () {
      const panel = document.getElementById('verify');
      if (!panel) return;
      const index = Number(panel.dataset.index);
      const button = document.getElementById('verify-button');
      const result = document.getElementById('verify-result');
      const names = ['Invoice bytes', 'Leaf hash', 'Inclusion proof', 'Checkpoint signature'];

      class StepFailure extends Error {}

      const encoder = new TextEncoder();
      function fromBase64(text) {
        const binary = atob(text);
        const bytes = new Uint8Array(binary.length);
        for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
        return bytes;
      }
      function toBase64(bytes) {
        let binary = '';
        for (const byte of bytes) binary += String.fromCharCode(byte);
        return btoa(binary);
      }
      function toHex(bytes) { return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(''); }
      function concat(...parts) {
        const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let at = 0;
        for (const part of parts) { out.set(part, at); at += part.length; }
        return out;
      }
      function equal(a, b) { return a.length === b.length && a.every((byte, i) => byte === b[i]); }
      async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)); }
      const leafPrefix = new Uint8Array([0]);
      const nodePrefix = new Uint8Array([1]);

      // RFC 9162 2.1.3.2: the root an inclusion proof leads to from leaf `leaf` at `index` of `size`.
      async function rootFromProof(leaf, index, size, proof) {
        if (index >= size) throw new StepFailure('leaf ' + index + ' is not in a tree of size ' + size);
        let fn = index, sn = size - 1, r = leaf;
        for (const p of proof) {
          if (sn === 0) throw new StepFailure('the proof has more hashes than the tree has levels');
          if (fn % 2 === 1 || fn === sn) {
            r = await sha256(concat(nodePrefix, p, r));
            if (fn % 2 === 0) {
              while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
            }
          } else {
            r = await sha256(concat(nodePrefix, r, p));
          }
          fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
        }
        if (sn !== 0) throw new StepFailure('the proof has too few hashes for a tree of size ' + size);
        return r;
      }

      // A C2SP signed note: the text up to the blank line, then lines "— NAME BASE64(key id || signature)".
      function parseNote(note) {
        const split = note.indexOf('\n\n');
        if (split < 0) throw new StepFailure('the checkpoint note has no signature block');
        const text = note.slice(0, split + 1);
        const signatures = note.slice(split + 2).split('\n').filter((l) => l.startsWith('\u2014 ')).map((line) => {
          const [name, b64] = line.slice(2).split(' ');
          const bytes = fromBase64(b64);
          return { name, keyID: bytes.slice(0, 4), signature: bytes.slice(4) };
        });
        const lines = text.split('\n');
        if (lines.length < 4) throw new StepFailure('the checkpoint note has no origin, size and root lines');
        return { text, origin: lines[0], size: Number(lines[1]), root: fromBase64(lines[2]), signatures };
      }

      async function getJSON(url) {
        const response = await fetch(url, { cache: 'no-store' });
        if (!response.ok) throw new StepFailure(url + ' answered ' + response.status);
        return response.json();
      }

      function step(n) { return panel.querySelector('#verify-steps li[data-step="' + n + '"]'); }
      function mark(n, status, detail) {
        const item = step(n);
        item.dataset.status = status;
        if (detail !== undefined) item.querySelector('.detail').textContent = detail;
      }

      async function verify() {
        button.disabled = true;
        for (let n = 1; n <= 4; n++) mark(n, 'pending');
        result.dataset.status = 'running';
        result.removeAttribute('data-step');
        result.textContent = 'Verifying…';
        let current = 1;
        try {
          if (!window.crypto || !crypto.subtle) throw new StepFailure('this browser has no WebCrypto here (it needs a secure context: https or localhost)');
          // 1. The invoice's canonical bytes.
          mark(1, 'running');
          const response = await fetch('/v1/invoices/' + index + '/canonical', { cache: 'no-store' });
          if (!response.ok) throw new StepFailure('/v1/invoices/' + index + '/canonical answered ' + response.status);
          const bytes = new Uint8Array(await response.arrayBuffer());
          let invoice;
          try { invoice = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)); }
          catch (e) { throw new StepFailure('the served bytes are not a JSON document: ' + e.message); }
          const claimed = invoice && invoice.settlement && invoice.settlement.ledger_index;
          if (String(claimed) !== String(index)) throw new StepFailure('the served document says it is invoice ' + claimed + ', not ' + index);
          mark(1, 'pass', bytes.length + ' bytes of ' + invoice.format + ', invoice #' + index + ' for ' +
               invoice.parties.model + '@' + invoice.parties.version + '.');

          // 2. The leaf hash, over exactly those bytes.
          current = 2; mark(2, 'running');
          const checkpoint = await getJSON('/v1/ledger/checkpoint');
          const note = parseNote(checkpoint.note);
          const proof = await getJSON('/v1/ledger/inclusion-proof?index=' + index + '&size=' + note.size);
          const leaf = await sha256(concat(leafPrefix, bytes));
          const listed = fromBase64(proof.leaf_hash);
          if (!equal(leaf, listed)) {
            throw new StepFailure('the invoice bytes hash to ' + toBase64(leaf) + ', but leaf #' + index + ' of the ledger is ' +
                                  proof.leaf_hash + ': the invoice is not the one the ledger holds');
          }
          mark(2, 'pass', 'SHA-256(0x00 ‖ bytes) = ' + toBase64(leaf) + ', leaf #' + index + ' of the ledger.');

          // 3. The inclusion proof, from our own leaf hash to the checkpoint's root.
          current = 3; mark(3, 'running');
          if (index >= note.size) throw new StepFailure('invoice #' + index + ' is not in the latest signed checkpoint (size ' + note.size + ') yet');
          const root = await rootFromProof(leaf, index, note.size, proof.proof.map(fromBase64));
          if (!equal(root, note.root)) {
            throw new StepFailure('the ' + proof.proof.length + '-hash proof leads to root ' + toBase64(root) +
                                  ', but the signed checkpoint\'s root is ' + toBase64(note.root));
          }
          mark(3, 'pass', proof.proof.length + ' hashes lead from leaf #' + index + ' to root ' + toBase64(root) +
               ' of the tree of ' + note.size + ' invoices, the root the checkpoint holds.');

          // 4. The checkpoint's Ed25519 signature, by the key its verifier key names.
          current = 4; mark(4, 'running');
          // <name>+<hex key id>+<base64>: the name has no '+', the base64 may.
          const [keyName, keyHex, ...keyRest] = checkpoint.verifier_key.split('+');
          const keyB64 = keyRest.join('+');
          const keyBytes = fromBase64(keyB64 || '');
          if (keyBytes.length !== 33 || keyBytes[0] !== 1) throw new StepFailure('the verifier key is not an Ed25519 key (0x01 ‖ 32 bytes)');
          const publicKey = keyBytes.slice(1);
          const keyID = (await sha256(concat(encoder.encode(keyName + '\n'), keyBytes))).slice(0, 4);
          if (toHex(keyID) !== keyHex) throw new StepFailure('the verifier key\'s id ' + keyHex + ' is not the hash of its name and key (' + toHex(keyID) + ')');
          const line = note.signatures.find((s) => s.name === keyName && equal(s.keyID, keyID));
          if (!line) throw new StepFailure('the checkpoint carries no signature by ' + keyName + ' (key id ' + keyHex + ')');
          let key;
          try { key = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']); }
          catch (e) { throw new StepFailure('this browser\'s WebCrypto cannot verify Ed25519 (' + e.name + '); use a current browser or provenance verify'); }
          const valid = await crypto.subtle.verify({ name: 'Ed25519' }, key, line.signature, encoder.encode(note.text));
          if (!valid) throw new StepFailure('the Ed25519 signature by ' + keyName + ' (key id ' + keyHex + ') does not verify over the checkpoint');
          const witnesses = note.signatures.length - 1;
          mark(4, 'pass', 'Signed by ' + keyName + ' (key id ' + keyHex + ')' +
               (witnesses > 0 ? ', with ' + witnesses + ' cosignature' + (witnesses === 1 ? '' : 's') + ' (not checked here).' : '.'));

          result.dataset.status = 'pass';
          result.textContent = 'Verified: invoice #' + index + ' is leaf #' + index + ' of the ledger of ' + note.size +
                               ' invoices signed by ' + keyName + '.';
        } catch (error) {
          const message = error instanceof StepFailure ? error.message : (error && error.message) || String(error);
          mark(current, 'fail', message);
          for (let n = current + 1; n <= 4; n++) mark(n, 'skipped');
          result.dataset.status = 'fail';
          result.dataset.step = String(current);
          result.textContent = 'Verification failed at step ' + current + ', ' + names[current - 1] + ': ' + message;
        } finally {
          button.disabled = false;
        }
      }

      button.addEventListener('click', verify);
      if (new URLSearchParams(location.search).get('verify') === '1') verify();
    })();
    """#
}
