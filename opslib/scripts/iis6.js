// iis6.js - opslib's IIS 6 metabase helper (Windows Script Host, JScript; plain ES3 only).
//
//   cscript //nologo //E:jscript iis6.js list
//   cscript //nologo //E:jscript iis6.js set-cert SITEID HASH STORE SECUREBINDING
//   cscript //nologo //E:jscript iis6.js clear-cert SITEID
//   cscript //nologo //E:jscript iis6.js start SITEID
//   cscript //nologo //E:jscript iis6.js stop SITEID
//   cscript //nologo //E:jscript iis6.js export-pfx SITEID PATH PASSWORD
//   cscript //nologo //E:jscript iis6.js swap SITEID HASH STORE SECUREBINDING STOPIDS TIMEOUT_S
//   cscript //nologo //E:jscript iis6.js journal SITEID
//
// Output: one line of ASCII-only JSON on stdout (non-ASCII escaped as \uXXXX), exit code 0.
// Failure: {"error": {"verb", "number" (HRESULT as "0x" + 8 hex digits), "description", ...}} and
//   exit 1 = an ADSI/COM call failed, 2 = bad arguments, 3 = the site did not reach the requested
//   ServerState.
// swap is one server-side transaction (see verbSwap): its answer is {"verb": "swap", "ok", "restored",
//   "cause", "before", "stopped", "site", "journal"}, exit 0 (ok), 3 (the new certificate did not come
//   up; the previous binding is back and the site started) or 4 (restoring failed too: the site may be
//   down). It also writes that answer, phase by phase, to %SystemRoot%\Temp\opslib-swap-SITEID.json
//   (the journal), so that a client that lost its connection can read what happened (verb journal). The kit decides by exit code and this JSON only, never by localized text
//   (docs/windows-behaviour.md W-CERTUTIL-EXITCODE).
//
// Sources (IIS 6.0 SDK and Windows Server 2003 metabase reference; section 6 of
// docs/windows-behaviour.md):
//   IIsWebServer (ADSI) ........ https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms524487(v=vs.90)
//   ServerComment .............. https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms525102(v=vs.90)
//   ServerState ................ https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms524905(v=vs.90)
//   ServerBindings ............. https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms524773(v=vs.90)
//   SecureBindings ............. https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms524481(v=vs.90)
//   SSLCertHash ................ https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms525719(v=vs.90)
//   SSLStoreName ............... https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms525311(v=vs.90)
//   Setting binary properties .. https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms524780(v=vs.90)
//   IIsWebServer.Start (ADSI) .. https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms525370(v=vs.90)
//   IIsWebServer.Stop (ADSI) ... https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms524486(v=vs.90)
//   IADs (Class, Name, GetInfo, SetInfo, PutEx) https://learn.microsoft.com/en-us/windows/win32/api/iads/nn-iads-iads
//   IIS.CertObj (IIsCertObj) ... docs/windows-behaviour.md W-IIS6-CERTOBJ-EXPORT; the method semantics are those of
//     MS-IMSA IIISCertObj ExportToBlob (InstanceName, Password, bPrivateKey, bCertChain)
//     https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-imsa/619d71c9-c1a9-4b2d-9b71-cd54981a8ef4
//     and the object is used as public IIS 6 backup scripts do: InstanceName = "W3SVC/" + n, then
//     Export(file, password, true, true, false).
//
// Unverified on a real Windows Server 2003 [U]: how ADSI hands an unset SSLCertHash to JScript (we
// accept null, an empty VBArray, or a thrown error), and whether Start() reports a binding conflict
// by throwing or only by leaving ServerState at 4 (we handle both: catch, then poll ServerState).
// export-pfx [U]: which chain IIS.CertObj puts into the PFX (we expect the chain CryptoAPI builds,
// root included), the PFX encryption it uses (expected 3DES/SHA-1, as every 2003 export), whether
// Export overwrites an existing file, and the exact HRESULT for a non-exportable key (expected
// NTE_BAD_KEY_STATE 0x8009000B). The kit proves the file it brings back and never relies on these.

var EXIT_OK = 0;
var EXIT_ADSI = 1;
var EXIT_USAGE = 2;
var EXIT_STATE = 3;
var EXIT_DOWN = 4;

var E_INVALIDARG = -2147024809; // 0x80070057
var E_FAIL = -2147467259; // 0x80004005
// MD_ERROR_DATA_NOT_FOUND: "The specified metadata was not found", what MS-IMSA ExportToBlob returns
// when the instance has no certificate reference.
var MD_ERROR_DATA_NOT_FOUND = -2146646015; // 0x800CC801

// ServerState values (ms524905): 1 starting, 2 started, 3 stopping, 4 stopped, 5 pausing,
// 6 paused, 7 continuing.
var MD_SERVER_STATE_STARTED = 2;
var MD_SERVER_STATE_STOPPED = 4;

var POLL_INTERVAL_MS = 250;
var POLL_ROUNDS = 40; // 10 s in all

// Scripting.FileSystemObject (Windows Script Host 5.6):
//   GetSpecialFolder(0) = WindowsFolder (%SystemRoot%)  https://learn.microsoft.com/en-us/office/vba/language/reference/user-interface-help/getspecialfolder-method
//   CreateTextFile(path, overwrite, unicode=false: ANSI) https://learn.microsoft.com/en-us/office/vba/language/reference/user-interface-help/createtextfile-method
//   OpenTextFile(path, 1 = ForReading)                 https://learn.microsoft.com/en-us/office/vba/language/reference/user-interface-help/opentextfile-method
var WINDOWS_FOLDER = 0;
var FOR_READING = 1;

// ADS_PROPERTY_CLEAR for IADs::PutEx (ADS_PROPERTY_OPERATION_ENUM, iads.h):
// https://learn.microsoft.com/en-us/windows/win32/api/iads/ne-iads-ads_property_operation_enum
var ADS_PROPERTY_CLEAR = 1;

// --- tiny ES3 JSON writer ---------------------------------------------------------------------

function hex4(code) {
    var h = code.toString(16);
    while (h.length < 4) {
        h = "0" + h;
    }
    return h;
}

function quote(s) {
    var out = "\"";
    var i, c;
    for (i = 0; i < s.length; i++) {
        c = s.charCodeAt(i);
        if (c === 34) {
            out += "\\\"";
        } else if (c === 92) {
            out += "\\\\";
        } else if (c < 32 || c > 126) {
            out += "\\u" + hex4(c);
        } else {
            out += s.charAt(i);
        }
    }
    return out + "\"";
}

function toJson(v) {
    var parts, i, k;
    if (v === null || v === undefined) {
        return "null";
    }
    if (typeof v === "number") {
        return isFinite(v) ? String(v) : "null";
    }
    if (typeof v === "boolean") {
        return v ? "true" : "false";
    }
    if (typeof v === "string") {
        return quote(v);
    }
    if (v instanceof Array) {
        parts = [];
        for (i = 0; i < v.length; i++) {
            parts.push(toJson(v[i]));
        }
        return "[" + parts.join(",") + "]";
    }
    parts = [];
    for (k in v) {
        if (v.hasOwnProperty(k)) {
            parts.push(quote(k) + ":" + toJson(v[k]));
        }
    }
    return "{" + parts.join(",") + "}";
}

function hresult(n) {
    // JScript error numbers are signed 32-bit; print them as the unsigned HRESULT.
    var u = (typeof n === "number") ? n : E_FAIL;
    if (u < 0) {
        u += 4294967296;
    }
    var h = u.toString(16).toUpperCase();
    while (h.length < 8) {
        h = "0" + h;
    }
    return "0x" + h;
}

// --- output ---------------------------------------------------------------------------------------

function Failure(code, number, description, extra) {
    this.code = code;
    this.number = number;
    this.description = description;
    this.extra = extra || null;
}

function emit(obj) {
    WScript.StdOut.WriteLine(toJson(obj));
}

function fail(verb, err) {
    var body = {};
    var code = EXIT_ADSI;
    var k;
    body.verb = verb;
    if (err instanceof Failure) {
        code = err.code;
        body.number = hresult(err.number);
        body.description = err.description;
        if (err.extra) {
            for (k in err.extra) {
                if (err.extra.hasOwnProperty(k)) {
                    body[k] = err.extra[k];
                }
            }
        }
    } else {
        // A COM/ADSI error surfaced as a JScript Error: .number holds the HRESULT.
        body.number = hresult(err && err.number);
        body.description = String((err && (err.description || err.message)) || "unknown error");
    }
    emit({"error": body});
    return code;
}

// --- reading the metabase --------------------------------------------------------------------------

function listOf(value) {
    // MULTISZ properties (ServerBindings, SecureBindings) arrive as a SAFEARRAY, which JScript
    // only reads through VBArray; a single string may come back for a one-element list [I].
    if (value === null || value === undefined) {
        return [];
    }
    if (typeof value === "string") {
        return value === "" ? [] : [value];
    }
    var items = new VBArray(value).toArray();
    var out = [];
    var i;
    for (i = 0; i < items.length; i++) {
        out.push(String(items[i]));
    }
    return out;
}

function readList(site, name) {
    try {
        return listOf(site.Get(name));
    } catch (e) {
        return []; // property not set on this node (IADs::Get fails for an absent value) [I]
    }
}

function readString(site, name) {
    try {
        var v = site.Get(name);
        return (v === null || v === undefined) ? "" : String(v);
    } catch (e) {
        return "";
    }
}

function certHashHex(site) {
    // SSLCertHash (ms525719) is BINARY; read it as the public SetSSLCertificate.js does:
    // new VBArray(site.SSLCertHash).toArray() -> byte values (docs/windows-behaviour.md W-IIS6-ADSI-SETCERT).
    var raw, bytes, out, i, h;
    try {
        raw = site.Get("SSLCertHash");
    } catch (e) {
        return "";
    }
    if (raw === null || raw === undefined || typeof raw === "string") {
        return "";
    }
    bytes = new VBArray(raw).toArray();
    out = "";
    for (i = 0; i < bytes.length; i++) {
        h = (bytes[i] & 255).toString(16).toUpperCase();
        out += (h.length < 2 ? "0" : "") + h;
    }
    return out;
}

function certHashInherited(site) {
    // SSLCertHash is INHERIT from /LM/W3SVC (ms525719): Get() returns the effective value, and
    // GetPropertyAttribObj(name).IsInherit says whether it comes from a parent node (GetPropertyAttribObj ms525702, IISPropertyAttribute ms524823,
    // docs/windows-behaviour.md W-IIS6-SSLCERTHASH-INHERIT). No value at all -> not inherited.
    try {
        return site.GetPropertyAttribObj("SSLCertHash").IsInherit ? true : false;
    } catch (e) {
        return false;
    }
}

function describe(site) {
    // Field order is part of the contract (opslib/rehearsal/programs/cscript.py writes the same).
    var hash = certHashHex(site);
    return {
        "id": parseInt(String(site.Name), 10),
        "name": readString(site, "ServerComment"),
        "state": Number(site.Get("ServerState")),
        "bindings": readList(site, "ServerBindings"),
        "secure_bindings": readList(site, "SecureBindings"),
        "cert_hash": hash,
        "cert_hash_inherited": hash !== "" && certHashInherited(site),
        "store_name": readString(site, "SSLStoreName")
    };
}

function openSite(id) {
    // ADsPath IIS://MachineName/W3SVC/N (IIsWebServer, ms524487). GetObject throws when the node
    // does not exist.
    var site = GetObject("IIS://localhost/W3SVC/" + id);
    if (String(site.Class) !== "IIsWebServer") {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "W3SVC/" + id + " is a " + site.Class + ", not an IIsWebServer");
    }
    return site;
}

function siteId(arg) {
    if (!/^[0-9]{1,10}$/.test(arg)) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "SITEID must be the number n of W3SVC/n, got: " + arg);
    }
    return String(parseInt(arg, 10));
}

// --- verbs -----------------------------------------------------------------------------------------

function verbList() {
    var service = GetObject("IIS://localhost/W3SVC");
    var sites = [];
    var e, child;
    // An ADSI container is enumerable with JScript's Enumerator; keep only IIsWebServer children
    // (W3SVC also holds Filters, Info, AppPools ...).
    for (e = new Enumerator(service); !e.atEnd(); e.moveNext()) {
        child = e.item();
        if (String(child.Class) === "IIsWebServer") {
            sites.push(describe(child));
        }
    }
    return {"verb": "list", "sites": sites};
}

function packHash(hex) {
    // ADSI wants BINARY as a string of UTF-16 code units, each holding two bytes little-endian:
    // bytes d0 23 -> 0x23d0 (ms524780, same packing as the public SetSSLCertificate.js).
    var out = "";
    var i, lo, hi;
    for (i = 0; i < 40; i += 4) {
        lo = parseInt(hex.substr(i, 2), 16);
        hi = parseInt(hex.substr(i + 2, 2), 16);
        out += String.fromCharCode(lo | (hi << 8));
    }
    return out;
}

function verbSetCert(args) {
    if (args.length !== 4) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "usage: set-cert SITEID HASH STORE SECUREBINDING");
    }
    var id = siteId(args[0]);
    var hash = args[1].toUpperCase();
    if (!/^[0-9A-F]{40}$/.test(hash)) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "HASH must be 40 hexadecimal digits (SHA-1 thumbprint)");
    }
    if (!/^[A-Za-z]{1,32}$/.test(args[2])) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "STORE must be a store name such as MY");
    }
    if (!/^[0-9.]*:[0-9]{1,5}:$/.test(args[3])) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "SECUREBINDING must look like IP:PORT: (e.g. :443:)");
    }
    var site = openSite(id);
    var before = describe(site);
    site.Put("SSLCertHash", packHash(hash)); // ms525719, ms524780
    site.Put("SSLStoreName", args[2]); // ms525311
    site.Put("SecureBindings", args[3]); // ms524481 (a one-string MULTISZ, as in ms524780)
    site.SetInfo(); // IADs::SetInfo commits the property cache to the metabase
    var after = describe(openSite(id));
    if (after.cert_hash !== hash || after.cert_hash_inherited) {
        throw new Failure(EXIT_STATE, E_FAIL, "SSLCertHash reads back as '" + after.cert_hash + "'" +
            (after.cert_hash_inherited ? " (inherited)" : "") + ", not the site's own " + hash, {"site": after});
    }
    return {"verb": "set-cert", "before": before, "site": after};
}

function verbClearCert(args) {
    if (args.length !== 1) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "usage: clear-cert SITEID");
    }
    var id = siteId(args[0]);
    var site = openSite(id);
    var before = describe(site);
    // IADs::PutEx(ADS_PROPERTY_CLEAR, ...) removes the value from this node; SecureBindings stays.
    site.PutEx(ADS_PROPERTY_CLEAR, "SSLCertHash", null);
    site.PutEx(ADS_PROPERTY_CLEAR, "SSLStoreName", null);
    site.SetInfo();
    return {"verb": "clear-cert", "before": before, "site": describe(openSite(id))};
}

function waitForState(site, wanted, rounds) {
    // ServerState is read from the ADSI property cache: refresh it with GetInfo() before each read.
    var state = Number(site.Get("ServerState"));
    var round = 0;
    var limit = (rounds === undefined) ? POLL_ROUNDS : rounds;
    while (state !== wanted && round < limit) {
        WScript.Sleep(POLL_INTERVAL_MS);
        site.GetInfo();
        state = Number(site.Get("ServerState"));
        round++;
    }
    return state;
}

function verbControl(verb, args) {
    if (args.length !== 1) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "usage: " + verb + " SITEID");
    }
    var id = siteId(args[0]);
    var site = openSite(id);
    var wanted = (verb === "start") ? MD_SERVER_STATE_STARTED : MD_SERVER_STATE_STOPPED;
    var before = Number(site.Get("ServerState"));
    var changed = false;
    var callError = null;
    if (before !== wanted) {
        changed = true;
        try {
            if (verb === "start") {
                site.Start(); // ms525370
            } else {
                site.Stop(); // ms524486
            }
        } catch (e) {
            callError = e;
        }
        site.GetInfo();
    }
    var state = (callError === null) ? waitForState(site, wanted) : Number(site.Get("ServerState"));
    var now = describe(site);
    if (state !== wanted) {
        throw new Failure(callError === null ? EXIT_STATE : EXIT_ADSI,
            callError === null ? E_FAIL : callError.number,
            (callError === null ? "" : String(callError.description || callError.message) + "; ") +
                "W3SVC/" + id + " ServerState is " + state + ", not " + wanted + " after " + verb +
                " (see the System event log, source W3SVC)",
            {"state": state, "site": now});
    }
    return {"verb": verb, "changed": changed, "before_state": before, "site": now};
}

function verbExportPfx(args) {
    // The site's server certificate (SSLCertHash in SSLStoreName) with its private key and chain, to
    // a password-protected PFX file (docs/windows-behaviour.md W-IIS6-CERTOBJ-EXPORT, IIS 6 native). The password is
    // only passed on to Export; it is never written to the output.
    if (args.length !== 3) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "usage: export-pfx SITEID PATH PASSWORD");
    }
    var id = siteId(args[0]);
    if (!/^[A-Za-z]:\\[^"*?<>|]+$/.test(args[1])) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "PATH must be an absolute file path such as C:\\x.pfx");
    }
    if (args[2] === "") {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "PASSWORD must not be empty");
    }
    var site = openSite(id);
    var hash = certHashHex(site);
    if (hash === "") {
        // Checked here rather than left to IIS.CertObj, whose answer for this case is [U].
        throw new Failure(EXIT_ADSI, MD_ERROR_DATA_NOT_FOUND,
            "W3SVC/" + id + " has no server certificate (SSLCertHash is not set); nothing to export");
    }
    var certObj = new ActiveXObject("IIS.CertObj");
    certObj.InstanceName = "W3SVC/" + id;
    // Export(FileName, Password, bPrivateKey, bCertChain, bRemoveCert): key and chain included, the
    // certificate stays in the store and on the site (bRemoveCert false). A COM failure (for example
    // NTE_BAD_KEY_STATE for a key created non-exportable) is thrown and reported by fail().
    certObj.Export(args[1], args[2], true, true, false);
    return {"verb": "export-pfx", "exported": args[1], "site": Number(id), "cert_hash": hash};
}

// --- swap: one server-side transaction ------------------------------------------------------------

function errorBody(err) {
    if (err instanceof Failure) {
        return {"number": hresult(err.number), "description": err.description};
    }
    return {"number": hresult(err && err.number),
        "description": String((err && (err.description || err.message)) || "unknown error")};
}

function journalPath(fso, id) {
    return String(fso.GetSpecialFolder(WINDOWS_FOLDER).Path) + "\\Temp\\opslib-swap-" + id + ".json";
}

function writeJournal(fso, path, record) {
    var f = fso.CreateTextFile(path, true, false);
    f.WriteLine(toJson(record));
    f.Close();
}

function tryJournal(fso, path, record) {
    // After the change the journal is best effort: the answer on stdout carries the same record.
    try {
        writeJournal(fso, path, record);
    } catch (e) {
        record.journal_error = errorBody(e);
    }
}

function putBinding(site, hash, store, bindings) {
    if (hash === "") {
        site.PutEx(ADS_PROPERTY_CLEAR, "SSLCertHash", null);
        site.PutEx(ADS_PROPERTY_CLEAR, "SSLStoreName", null);
    } else {
        site.Put("SSLCertHash", packHash(hash)); // ms525719, ms524780
        site.Put("SSLStoreName", store === "" ? "MY" : store); // ms525311
    }
    if (bindings.length === 0) {
        site.PutEx(ADS_PROPERTY_CLEAR, "SecureBindings", null);
    } else {
        site.Put("SecureBindings", bindings[0]); // ms524481; the kit swaps sites with one secure binding
    }
    site.SetInfo();
}

function stopSite(site, rounds) {
    // Stop() (ms524486) and wait for ServerState 4; throws a Failure when the site does not stop.
    var state;
    site.GetInfo();
    if (Number(site.Get("ServerState")) === MD_SERVER_STATE_STOPPED) {
        return;
    }
    site.Stop();
    site.GetInfo();
    state = waitForState(site, MD_SERVER_STATE_STOPPED, rounds);
    if (state !== MD_SERVER_STATE_STOPPED) {
        throw new Failure(EXIT_STATE, E_FAIL, "W3SVC/" + site.Name + " ServerState is " + state +
            ", not " + MD_SERVER_STATE_STOPPED + " after stop");
    }
}

function startSite(site, rounds) {
    // Start() (ms525370) and wait for ServerState 2 up to the bound; a throwing Start() is rethrown.
    var state;
    site.Start();
    site.GetInfo();
    state = waitForState(site, MD_SERVER_STATE_STARTED, rounds);
    if (state !== MD_SERVER_STATE_STARTED) {
        throw new Failure(EXIT_STATE, E_FAIL, "W3SVC/" + site.Name + " ServerState is " + state + ", not " +
            MD_SERVER_STATE_STARTED + " after start (see the System event log, source W3SVC)");
    }
}

function verbSwap(args) {
    // One invocation does the whole of seed step 2 on the server, so that it completes (or puts the
    // previous binding back) whatever happens to the WinRM client: record the old binding in the
    // journal, stop the other sites sharing the secure binding, set the new certificate, restart the
    // site and wait for ServerState 2 up to TIMEOUT_S; on any failure restore the old SSLCertHash,
    // SSLStoreName and SecureBindings and start the site again.
    if (args.length !== 6) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG,
            "usage: swap SITEID HASH STORE SECUREBINDING STOPIDS TIMEOUT_S");
    }
    var id = siteId(args[0]);
    var hash = args[1].toUpperCase();
    var i, stopIds, others, fso, journal, record, site, before, stopped, cause, after, restored, again;
    if (!/^[0-9A-F]{40}$/.test(hash)) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "HASH must be 40 hexadecimal digits (SHA-1 thumbprint)");
    }
    if (!/^[A-Za-z]{1,32}$/.test(args[2])) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "STORE must be a store name such as MY");
    }
    if (!/^[0-9.]*:[0-9]{1,5}:$/.test(args[3])) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "SECUREBINDING must look like IP:PORT: (e.g. :443:)");
    }
    if (!/^(-|[0-9]{1,10}(,[0-9]{1,10})*)$/.test(args[4])) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "STOPIDS must be - or site ids separated by commas");
    }
    if (!/^[0-9]{1,4}$/.test(args[5]) || parseInt(args[5], 10) < 1) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "TIMEOUT_S must be a number of seconds from 1 to 9999");
    }
    var rounds = parseInt(args[5], 10) * (1000 / POLL_INTERVAL_MS);
    stopIds = (args[4] === "-") ? [] : args[4].split(",");
    // Open everything before changing anything: a missing site fails here, with nothing changed.
    site = openSite(id);
    before = describe(site);
    others = [];
    for (i = 0; i < stopIds.length; i++) {
        others.push(openSite(siteId(stopIds[i])));
    }
    fso = new ActiveXObject("Scripting.FileSystemObject");
    journal = journalPath(fso, id);
    record = {"verb": "swap", "ok": false, "restored": false, "phase": "swapping", "new_hash": hash,
        "before": before, "stopped": [], "site": null, "cause": null, "journal": journal};
    writeJournal(fso, journal, record); // no journal, no change
    stopped = [];
    try {
        for (i = 0; i < others.length; i++) {
            stopSite(others[i], POLL_ROUNDS);
            stopped.push(describe(others[i]));
        }
        record.stopped = stopped;
        putBinding(site, hash, args[2], [args[3]]);
        after = describe(openSite(id));
        if (after.cert_hash !== hash || after.cert_hash_inherited) {
            throw new Failure(EXIT_STATE, E_FAIL, "SSLCertHash reads back as '" + after.cert_hash + "'" +
                (after.cert_hash_inherited ? " (inherited)" : "") + ", not the site's own " + hash);
        }
        stopSite(site, POLL_ROUNDS);
        startSite(site, rounds);
        record.ok = true;
        record.phase = "done";
        record.site = describe(site);
        tryJournal(fso, journal, record);
        return {"result": record, "code": EXIT_OK};
    } catch (err) {
        cause = errorBody(err);
    }
    record.cause = cause;
    record.phase = "restoring";
    tryJournal(fso, journal, record);
    restored = false;
    try {
        site = openSite(id);
        // A site that inherited its certificate gets its own value cleared again, not the
        // inherited value written as its own (W-IIS6-SSLCERTHASH-INHERIT).
        putBinding(site, before.cert_hash_inherited ? "" : before.cert_hash, before.store_name,
            before.secure_bindings);
        stopSite(site, POLL_ROUNDS);
        startSite(site, rounds);
        after = describe(site);
        restored = after.cert_hash === before.cert_hash && after.cert_hash_inherited === before.cert_hash_inherited;
    } catch (e2) {
        again = errorBody(e2);
        record.restore_error = again;
        try {
            after = describe(openSite(id));
        } catch (e3) {
            after = null;
        }
    }
    record.restored = restored;
    record.phase = restored ? "restored" : "failed";
    record.site = after;
    tryJournal(fso, journal, record);
    return {"result": record, "code": restored ? EXIT_STATE : EXIT_DOWN};
}

function verbJournal(args) {
    // What the last swap of SITEID left in its journal (null when there is none).
    if (args.length !== 1) {
        throw new Failure(EXIT_USAGE, E_INVALIDARG, "usage: journal SITEID");
    }
    var id = siteId(args[0]);
    var fso = new ActiveXObject("Scripting.FileSystemObject");
    var path = journalPath(fso, id);
    var text = null;
    var f;
    if (fso.FileExists(path)) {
        f = fso.OpenTextFile(path, FOR_READING, false);
        text = String(f.ReadAll());
        f.Close();
    }
    return {"verb": "journal", "site": Number(id), "path": path, "journal": text};
}

// --- main ------------------------------------------------------------------------------------------

function main() {
    var argv = [];
    var i, swapped;
    for (i = 0; i < WScript.Arguments.length; i++) {
        argv.push(String(WScript.Arguments.Item(i)));
    }
    var verb = argv.length > 0 ? argv[0] : "";
    var args = argv.slice(1);
    try {
        if (verb === "list") {
            if (args.length !== 0) {
                throw new Failure(EXIT_USAGE, E_INVALIDARG, "usage: list");
            }
            emit(verbList());
        } else if (verb === "set-cert") {
            emit(verbSetCert(args));
        } else if (verb === "clear-cert") {
            emit(verbClearCert(args));
        } else if (verb === "start" || verb === "stop") {
            emit(verbControl(verb, args));
        } else if (verb === "export-pfx") {
            emit(verbExportPfx(args));
        } else if (verb === "swap") {
            swapped = verbSwap(args);
            emit(swapped.result);
            return swapped.code;
        } else if (verb === "journal") {
            emit(verbJournal(args));
        } else {
            throw new Failure(EXIT_USAGE, E_INVALIDARG, "unknown verb '" + verb +
                "'; use list, set-cert, clear-cert, start, stop, export-pfx, swap or journal");
        }
    } catch (err) {
        return fail(verb, err);
    }
    return EXIT_OK;
}

WScript.Quit(main());
