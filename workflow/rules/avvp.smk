# Stage "avvp": rules are added by the issue that builds it.
