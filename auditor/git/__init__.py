"""Everything that reads git: opening a repository, mirroring a remote, the commit listing, each commit's changes,
raw objects and blob bytes. Nothing outside this package runs git or walks a tree."""
