-- Ends a family. ARGV: prefix, session id. Returns its session record or false.
return remove_family(ARGV[2])
