// Node harness for opslib/scripts/iis6.js: runs the *same file* the kit uploads, in a vm context
// whose WScript, GetObject, Enumerator, VBArray and ActiveXObject are stubs backed by a JSON site
// table. The stubs follow ADSI's documented shape: a property cache filled by GetObject/GetInfo,
// Put/PutEx write to the cache, SetInfo commits (IADs,
// https://learn.microsoft.com/en-us/windows/win32/api/iads/nn-iads-iads), MULTISZ and BINARY values
// come back as SAFEARRAYs that JScript can only read through VBArray.
//
// usage: node run_iis6.js SCRIPT CASE.json
//   CASE.json: {"sites": [{id, comment, state, server_bindings, secure_bindings, ssl_cert_hash,
//               ssl_store_name, fail_start}], "argv": ["list"],
//               "certs": {HASH: "exportable" | "not-exportable" | "no-key"}, "is_admin": true,
//               "fail_start_thumbprints": [HASH ...], "windows_folder": "C:\\WINDOWS",
//               "files": {PATH: TEXT}, "read_only": [PATH ...]}
// prints:    {"stdout": "...", "exit_code": N, "sites": [... the table afterwards ...], "calls": [...],
//             "exports": [... IIS.CertObj Export calls that succeeded ...], "files": {PATH: TEXT}}
"use strict";

const fs = require("fs");
const vm = require("vm");

const [scriptPath, casePath] = process.argv.slice(2);
const source = fs.readFileSync(scriptPath, "latin1");
const testCase = JSON.parse(fs.readFileSync(casePath, "utf8"));
const table = testCase.sites;
const failThumbs = (testCase.fail_start_thumbprints || []).map(t => String(t).toUpperCase());
// /LM/W3SVC's SSLCertHash (IIsWebService): a site without its own value reads this one through Get(),
// and GetPropertyAttribObj("SSLCertHash").IsInherit is true for it (ms525719 INHERIT, GetPropertyAttribObj ms525702, IISPropertyAttribute ms524823).
const serviceHash = String(testCase.service_cert_hash || "").toUpperCase();
const files = Object.assign({}, testCase.files || {});
const readOnly = new Set((testCase.read_only || []).map(p => p.toLowerCase()));
const calls = [];

const STARTING = 1, STARTED = 2, STOPPING = 3, STOPPED = 4;

function comError(hresult, description) {
  // JScript surfaces a failing COM call as an Error whose .number is the signed HRESULT.
  const e = new Error(description);
  e.number = hresult | 0;
  e.description = description;
  return e;
}

class SafeArray {
  constructor(items) { this.items = items.slice(); }
}

function VBArray(value) {
  if (!(value instanceof SafeArray)) {
    throw new TypeError("VBArray expected");
  }
  this.toArray = () => value.items.slice();
}

function conflicts(site) {
  const mine = new Set(site.secure_bindings.map(b => "s|" + b.split(":").slice(0, 2).join(":"))
    .concat(site.server_bindings.map(b => "h|" + b)));
  return table.some(other => other.id !== site.id && other.state === STARTED &&
    other.secure_bindings.map(b => "s|" + b.split(":").slice(0, 2).join(":"))
      .concat(other.server_bindings.map(b => "h|" + b)).some(x => mine.has(x)));
}

function tick() {
  for (const s of table) {
    if (s.state === STARTING) s.state = STARTED;
    if (s.state === STOPPING) s.state = STOPPED;
  }
}

function read(site, name) {
  switch (name.toLowerCase()) {
    case "servercomment": return site.comment;
    case "serverstate": return site.state;
    case "serverbindings": return new SafeArray(site.server_bindings);
    case "securebindings":
      if (!site.secure_bindings.length) throw comError(0x8000500D, "The directory property cannot be found in the cache.");
      return new SafeArray(site.secure_bindings);
    case "sslcerthash": {
      const hash = site.ssl_cert_hash || serviceHash;
      if (!hash) throw comError(0x8000500D, "The directory property cannot be found in the cache.");
      const bytes = [];
      for (let i = 0; i < 40; i += 2) bytes.push(parseInt(hash.substr(i, 2), 16));
      return new SafeArray(bytes);
    }
    case "sslstorename": {
      const store = site.ssl_store_name || (serviceHash && !site.ssl_cert_hash ? "MY" : "");
      if (!store) throw comError(0x8000500D, "The directory property cannot be found in the cache.");
      return store;
    }
    default: throw comError(0x8000500D, "The directory property cannot be found in the cache.");
  }
}

function write(site, name, value) {
  switch (name.toLowerCase()) {
    case "sslcerthash": {
      if (value === null) { site.ssl_cert_hash = ""; return; }
      if (typeof value !== "string" || value.length !== 10) throw comError(0x80070057, "The parameter is incorrect.");
      let hex = "";
      for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i);
        hex += (c & 0xff).toString(16).padStart(2, "0") + ((c >> 8) & 0xff).toString(16).padStart(2, "0");
      }
      site.ssl_cert_hash = hex.toUpperCase();
      return;
    }
    case "sslstorename": site.ssl_store_name = value === null ? "" : String(value); return;
    case "securebindings":
      site.secure_bindings = value === null ? [] : (value instanceof SafeArray ? value.items : [String(value)]);
      return;
    case "servercomment": site.comment = String(value); return;
    default: throw comError(0x8000500C, "The directory datatype cannot be converted to/from a native DS datatype");
  }
}

function adsiSite(row) {
  let cache = JSON.parse(JSON.stringify(row));
  const pending = [];
  return {
    Class: "IIsWebServer",
    Name: String(row.id),
    Get(name) { calls.push("Get " + row.id + " " + name); return read(cache, name); },
    GetPropertyAttribObj(name) {
      // IISPropertyAttribute (GetPropertyAttribObj ms525702, IISPropertyAttribute ms524823): IsInherit says the value comes from a parent node.
      calls.push("GetPropertyAttribObj " + row.id + " " + name);
      if (name.toLowerCase() !== "sslcerthash") throw comError(0x8000500D, "The directory property cannot be found in the cache.");
      return { IsInherit: !cache.ssl_cert_hash && serviceHash !== "" };
    },
    Put(name, value) { calls.push("Put " + row.id + " " + name); write(cache, name, value); pending.push([name, value]); },
    PutEx(op, name, value) {
      calls.push("PutEx " + row.id + " " + op + " " + name);
      if (op !== 1) throw comError(0x80070057, "The parameter is incorrect.");
      write(cache, name, null); pending.push([name, null]);
    },
    SetInfo() {
      calls.push("SetInfo " + row.id);
      for (const [name, value] of pending.splice(0)) write(row, name, value);
    },
    GetInfo() { calls.push("GetInfo " + row.id); cache = JSON.parse(JSON.stringify(row)); },
    Start() {
      calls.push("Start " + row.id);
      if (row.fail_start || failThumbs.includes(String(row.ssl_cert_hash).toUpperCase())) {
        throw comError(0x80070020, "The process cannot access the file because it is being used by another process.");
      }
      if (row.state === STARTED) return;
      // IIS 6 logs W3SVC event 1007 for a binding already in use and leaves the site stopped [U].
      if (!conflicts(row)) row.state = STARTING;
    },
    Stop() { calls.push("Stop " + row.id); if (row.state !== STOPPED) row.state = STOPPING; },
  };
}

function adsiContainer() {
  const children = [
    { Class: "IIsFilters", Name: "Filters" },
    { Class: "IIsWebInfo", Name: "Info" },
  ].concat(table.map(adsiSite));
  return { Class: "IIsWebService", Name: "W3SVC", children };
}

function GetObject(path) {
  calls.push("GetObject " + path);
  const m = /^IIS:\/\/localhost\/W3SVC(?:\/(\d+))?$/i.exec(path);
  if (!m) throw comError(0x80005000, "An invalid directory pathname was passed");
  if (m[1] === undefined) return adsiContainer();
  const row = table.find(s => String(s.id) === m[1]);
  if (!row) throw comError(0x80070003, "The system cannot find the path specified.");
  return adsiSite(row);
}

function Enumerator(collection) {
  const items = collection.children;
  let i = 0;
  this.atEnd = () => i >= items.length;
  this.moveNext = () => { i++; };
  this.item = () => items[i];
}

// IIS.CertObj (IIsCertObj): InstanceName selects the site, Export(file, password, bPrivateKey,
// bCertChain, bRemoveCert) writes the site's certificate to a PFX (MS-IMSA ExportToBlob semantics,
// https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-imsa/619d71c9-c1a9-4b2d-9b71-cd54981a8ef4).
// The case's "certs" map (SSLCertHash -> "exportable" | "not-exportable" | "no-key") stands for the
// store and its keys; "is_admin": false makes the export fail as for a non-administrator. Failures
// use the same HRESULTs and message texts as the rehearsal's certutil/cscript emulation.
const certs = testCase.certs || {};
const exported = [];

function certObj() {
  const obj = {
    InstanceName: undefined,
    Export(path, password, bPrivateKey, bCertChain, bRemoveCert) {
      calls.push("Export " + obj.InstanceName);
      const m = /^W3SVC\/(\d+)$/.exec(String(obj.InstanceName));
      if (!m) throw comError(0x80070057, "The parameter is incorrect.");
      const row = table.find(s => String(s.id) === m[1]);
      if (!row) throw comError(0x80070003, "The system cannot find the path specified.");
      if (!row.ssl_cert_hash) throw comError(0x800CC801, "The specified metadata was not found.");
      const key = certs[row.ssl_cert_hash];
      if (key === undefined) throw comError(0x80092004, "Cannot find object or property.");
      if (testCase.is_admin === false) throw comError(0x80070005, "Access is denied.");
      if (key === "no-key") throw comError(0x80090016, "Keyset does not exist");
      if (key === "not-exportable") throw comError(0x8009000B, "Key not valid for use in specified state.");
      exported.push({ instance: obj.InstanceName, path, password, private_key: bPrivateKey,
        chain: bCertChain, remove: bRemoveCert, cert_hash: row.ssl_cert_hash });
    },
  };
  return obj;
}

// Scripting.FileSystemObject: GetSpecialFolder(0) is the Windows folder; CreateTextFile(path,
// overwrite, unicode=false) writes ANSI text, WriteLine ends lines with CR LF; a read-only file makes
// CreateTextFile throw CTL_E_PERMISSIONDENIED 0x800A0046 ("Permission denied")
// (https://learn.microsoft.com/en-us/office/vba/language/reference/user-interface-help/createtextfile-method).
function fileSystem() {
  const key = p => Object.keys(files).find(k => k.toLowerCase() === p.toLowerCase());
  return {
    GetSpecialFolder(n) {
      if (n !== 0) throw comError(0x80070057, "The parameter is incorrect.");
      return { Path: testCase.windows_folder || "C:\\WINDOWS" };
    },
    FileExists(p) { return key(String(p)) !== undefined; },
    CreateTextFile(p, overwrite, unicode) {
      calls.push("CreateTextFile " + p);
      if (unicode) throw comError(0x80070057, "the harness writes ANSI only");
      if (readOnly.has(String(p).toLowerCase())) throw comError(0x800A0046, "Permission denied");
      if (!overwrite && key(String(p)) !== undefined) throw comError(0x800A003A, "File already exists");
      let text = "";
      return {
        WriteLine(line) { text += line + "\r\n"; },
        Close() { const k = key(String(p)); if (k !== undefined) delete files[k]; files[p] = text; },
      };
    },
    OpenTextFile(p, mode) {
      calls.push("OpenTextFile " + p);
      const k = key(String(p));
      if (mode !== 1 || k === undefined) throw comError(0x800A0035, "File not found");
      return { ReadAll() { return files[k]; }, Close() {} };
    },
  };
}

function ActiveXObject(progid) {
  calls.push("ActiveXObject " + progid);
  if (progid === "IIS.CertObj") return certObj();
  if (progid === "Scripting.FileSystemObject") return fileSystem();
  throw comError(0x800A01AD, "Automation server can't create object: " + progid);
}

class Quit { constructor(code) { this.code = code; } }
let stdout = "";
const argv = testCase.argv.map(String);
const WScript = {
  Arguments: { length: argv.length, Item: i => argv[i] },
  StdOut: { WriteLine: s => { stdout += s + "\r\n"; }, Write: s => { stdout += s; } },
  Sleep: () => tick(),
  Quit: code => { throw new Quit(code); },
};

const context = vm.createContext({ WScript, GetObject, Enumerator, VBArray, ActiveXObject });
let exitCode = 0;
try {
  vm.runInContext(source, context, { filename: "iis6.js" });
} catch (e) {
  if (e instanceof Quit) exitCode = e.code;
  else { process.stderr.write(String(e && e.stack || e) + "\n"); exitCode = 99; }
}
process.stdout.write(JSON.stringify({ stdout, exit_code: exitCode, sites: table, calls, exports: exported, files }));
