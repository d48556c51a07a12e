"""Console accounts: users with roles, bureau approval of outside users, login sessions.

`UsersService` hashes passwords (Argon2id via argon2-cffi), approves pending
accounts, changes and resets passwords (one handed out by someone else is
flagged `must_change_password` until its user changes it) and opens/ends
sessions; `node.store.users` persists them. Every failed sign-in gets one
answer (`SIGN_IN_FAILED`) after one Argon2 verification, whatever the reason. Each
login passes the client's address through `throttle.LoginThrottle` first:
too many failures from one address and it is refused before any password is
hashed; the throttle also keeps failed logins from flooding the audit log.
"""
