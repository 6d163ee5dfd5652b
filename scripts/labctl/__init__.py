"""labctl: the host-side tool behind the Makefile (build, up, status, ...)."""
