"""Trust: OpenPGP keys and signatures, `.sha512` sidecars, the agent's upgrade verification
chain, package signatures as Kibana judges them, and key hosting.

pysequoia generates keys and makes signatures; checking them follows Go's x/crypto/openpgp
(what the agent runs): `armor` and `packet_stream` read the bytes, `packets` the fields,
`key_standing` which keys may sign, `signature_math` the hashes and the public-key math,
`signatures` the detached-signature check itself. Also: `keys`, `sha512`,
`artifact_check`, `agent_upgrade`, `package_signatures`, `elastic_key`, `fleet_server`,
`key_routes`.
"""
