// fluxtune's e2e Git host (main.go): git http-backend behind net/http/cgi,
// plus GitHub-style push webhooks. Standard library only.
module fluxtune.local/e2e/tools/gitserver

go 1.26.0
