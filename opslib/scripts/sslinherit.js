// sslinherit.js - opslib lab probe (read-only): how IIS 6 reports an inherited SSLCertHash.
//
//   cscript //nologo //E:jscript sslinherit.js
//
// For /LM/W3SVC (IIsWebService) and each IIsWebServer under it: whether SSLCertHash reads a value there
// (Get: the effective value, own or inherited), GetPropertyAttribObj("SSLCertHash").IsInherit, and whether
// the node holds its OWN value: W3SVC.GetDataPaths("SSLCertHash", 0) lists the nodes where the property is
// set, never those that only inherit it. Changes nothing. One line of ASCII JSON on stdout, exit 0; exit 1
// when W3SVC cannot be opened. Decided by the JSON only (docs/windows-behaviour.md W-IIS6-SSLCERTHASH-INHERIT).
// Used by the lab probe iis6.sslcerthash-inherit and by the rollback of a site that inherited its certificate
// (the service-level value, "hash" of "service", is read before the site's own value is cleared).
//
//   SSLCertHash (INHERIT) ...... https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms525719(v=vs.90)
//   GetPropertyAttribObj ....... https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms525702(v=vs.90)
//   IISPropertyAttribute ....... https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms524823(v=vs.90)
//   GetDataPaths (ADSI) ........ https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms524960(v=vs.90)
//   IMSAdminBase::GetDataPaths . https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms525329(v=vs.90)
//     ("Paths to keys that contain only inherited data for the specified identifier will not be returned")
var IIS_ANY_PROPERTY = 0;
var MD_ERROR_DATA_NOT_FOUND = 0x800CC801;

function hex(n) {
    var h = (n >>> 0).toString(16).toUpperCase();
    while (h.length < 8) {
        h = "0" + h;
    }
    return "0x" + h;
}

function quote(s) {
    var out = "\"", i, c;
    for (i = 0; i < s.length; i++) {
        c = s.charCodeAt(i);
        if (c === 34 || c === 92) {
            out += "\\" + s.charAt(i);
        } else if (c < 32 || c > 126) {
            out += "\\u" + ("000" + c.toString(16)).slice(-4);
        } else {
            out += s.charAt(i);
        }
    }
    return out + "\"";
}

function hashHex(node) {
    // The effective SSLCertHash (own or inherited) as upper-case hex, "" when none (BINARY, read as
    // new VBArray(...).toArray() like the kit's iis6.js).
    var raw, bytes, out = "", i, h;
    try {
        raw = node.Get("SSLCertHash");
    } catch (e) {
        return "";
    }
    if (raw === null || raw === undefined || typeof raw === "string") {
        return "";
    }
    bytes = new VBArray(raw).toArray();
    for (i = 0; i < bytes.length; i++) {
        h = (bytes[i] & 255).toString(16).toUpperCase();
        out += (h.length < 2 ? "0" : "") + h;
    }
    return out;
}

function isInherit(node) {
    try {
        return node.GetPropertyAttribObj("SSLCertHash").IsInherit ? "true" : "false";
    } catch (e) {
        return quote(hex(e.number));
    }
}

function record(id, node, own) {
    var hash = hashHex(node);
    return "{\"id\":" + id + ",\"value\":" + (hash !== "" ? "true" : "false") + ",\"hash\":" + quote(hash) +
        ",\"is_inherit\":" + isInherit(node) + ",\"own\":" + (own ? "true" : "false") + "}";
}

var service, paths = [], ownIds = {}, serviceOwn = false, dataPaths = "ok", i, m, e, child, sites = [];
try {
    service = GetObject("IIS://localhost/W3SVC");
} catch (err) {
    WScript.StdOut.WriteLine("{\"error\":" + quote(hex(err.number)) + "}");
    WScript.Quit(1);
}
try {
    paths = new VBArray(service.GetDataPaths("SSLCertHash", IIS_ANY_PROPERTY)).toArray();
} catch (err) {
    dataPaths = ((err.number >>> 0) === MD_ERROR_DATA_NOT_FOUND) ? "none" : hex(err.number);
}
for (i = 0; i < paths.length; i++) {
    // IIS://localhost/W3SVC or IIS://localhost/W3SVC/n (a deeper node is not a site's own value)
    m = /\/W3SVC(?:\/(\d+))?\/?$/i.exec(String(paths[i]));
    if (m && m[1]) {
        ownIds[m[1]] = true;
    } else if (m) {
        serviceOwn = true;
    }
}
for (e = new Enumerator(service); !e.atEnd(); e.moveNext()) {
    child = e.item();
    if (String(child.Class) === "IIsWebServer") {
        sites.push(record(parseInt(String(child.Name), 10), child, ownIds[String(child.Name)] === true));
    }
}
var quoted = [];
for (i = 0; i < paths.length; i++) {
    quoted.push(quote(String(paths[i])));
}
WScript.StdOut.WriteLine("{\"data_paths\":" + quote(dataPaths) + ",\"paths\":[" + quoted.join(",") +
    "],\"service\":" + record(0, service, serviceOwn) + ",\"sites\":[" + sites.join(",") + "]}");
WScript.Quit(0);
