// opslib folder creation time: cscript //nologo //E:jscript folderage.js FOLDER
// Prints the folder's creation time as milliseconds since 1970-01-01 UTC, ASCII digits only, and exits 0;
// exit 1 (nothing printed) when the folder is not there. No localized text is printed or parsed:
// FileSystemObject GetFolder(p).DateCreated is a date value (not text), new Date(...).getTime() is
// milliseconds since 1970 UTC.
// https://learn.microsoft.com/en-us/office/vba/language/reference/user-interface-help/datecreated-property
var fso = new ActiveXObject("Scripting.FileSystemObject");
var args = WScript.Arguments;
if (args.length !== 1 || !fso.FolderExists(args(0))) {
    WScript.Quit(1);
}
WScript.StdOut.WriteLine(String(new Date(fso.GetFolder(args(0)).DateCreated).getTime()));
WScript.Quit(0);
