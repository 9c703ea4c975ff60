"""Trust: OpenPGP keys and signatures (pysequoia), `.sha512` sidecars, the agent's upgrade
verification chain, package signatures as Kibana judges them, and key hosting.

Modules: `keys`, `signatures`, `sha512`, `agent_upgrade`, `package_signatures`,
`elastic_key`, `fleet_server`, `key_routes`.
"""
