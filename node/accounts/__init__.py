"""Console accounts: users with roles, bureau approval of outside users, login sessions.

`UsersService` hashes passwords (Argon2id via argon2-cffi), approves pending
accounts and opens/ends sessions; `node.store.users` persists them.
"""
