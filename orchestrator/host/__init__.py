"""The machine itself: running commands, entering network namespaces, rtnetlink, derived names
of kernel objects, the ownership ledger and cleanup by ownership."""
