"""The node's local web console: server-rendered pages for officers, auditors and admins.

`admin_ui.app.build_console_app(node)` is the one entry point; `node.server`
serves what it returns. A request flows through:

1. `render.error_middleware` (outermost): turns every `IarmsError` into its
   HTTP status with its message, as an HTML page or, on `.json` routes, as
   `{"error": {"code", "message", "field"}}`; anything unexpected becomes a
   logged 500 page without a traceback.
2. `node.web.guard.connection_middleware`: tells the connection guard that a
   request reached its handler (its body deadline runs) and when it ended; a
   client that leaves mid-body is counted there, not logged as an incident.
3. `app.nul_middleware`: a NUL character in the address or the query string
   is a 400 naming the parameter (posted forms are checked by their views).
4. `auth.session_middleware`: every POST must come from the console's own
   origin (`Sec-Fetch-Site`/`Origin`), the login's included. Every path but
   `/login` and `/static/*` needs a live session cookie (`iarms_session`);
   without one a page GET is sent to `/login?next=...` and anything else
   gets 401. A user who must change a password someone else gave them is
   sent to `/account/password` (403 `password_change_required` on `.json`
   twins and posts). Every POST must carry the session's CSRF token (form
   field `csrf_token`) or is refused with 403 before the handler runs.
5. A thin view (`views_home`, `views_records`, `views_import`, `views_admin`,
   `views_lookup` for lookups and hits, `views_peers` for the peer registry,
   `views_traces` and `views_trace_new` for trace requests,
   `views_account` for the user's own password):
   it parses the input (`forms`), checks the role (`auth.requires`), calls
   one node service and hands the result to `render.page`, which renders a
   template or, for a path ending in `.json`, the same data as JSON. Form
   errors are caught in the view, which shows the form again with the
   message next to the field and the user's input kept.

CSV uploads are streamed to a temporary file and imported by a background
task in `jobs.ImportJobs`; the job page follows its progress. A bulk lookup's
file (at most 10,000 serials) is read into memory and looked up at once.

Lookups need the node's federation services (`node.app.Federation`), which
`build_console_app(node, fed)` is given when the node runs with its signing key.

`render.add_security_headers` puts the CSP and the other security headers on
every response. The console calls node services only, never the store.
"""
