-- Label Studio keeps its own database beside the curate ledger on the same server.
CREATE DATABASE labelstudio OWNER curate;
