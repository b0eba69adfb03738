"""Programs the rehearsal host's interpreter can start (certutil, certreq, reg, cscript, …)."""
