"""Built-in tables of the registry: known categories and input ingestion methods.

spec: epr-api §10. fleetgap's own tables, written from the facts (ids, titles, parents,
input types) of the upstream tables.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    id: str
    title: str
    parent: Category | None = None


def _build_categories() -> dict[str, Category]:
    table: dict[str, Category] = {}
    for top_id, (title, subcategories) in _TOP_LEVEL.items():
        top = Category(top_id, title)
        table[top_id] = top
        for sub_id, sub_title in subcategories.items():
            table[sub_id] = Category(sub_id, sub_title, top)
    return table


def subcategories_of(category_id: str) -> frozenset[str]:
    return _SUBCATEGORIES.get(category_id, frozenset())


def has_category(categories: tuple[str, ...] | list[str], wanted: str) -> bool:
    """`wanted` is in the list, or is a top-level category one of whose children is."""
    if wanted in categories:
        return True
    children = _SUBCATEGORIES.get(wanted)
    return bool(children) and any(c in children for c in categories)


_TOP_LEVEL: dict[str, tuple[str, dict[str, str]]] = {
    "aws": ("AWS", {}),
    "azure": ("Azure", {}),
    "cloud": ("Cloud", {}),
    "config_management": ("Config management", {}),
    "containers": ("Containers", {}),
    "crm": ("CRM", {}),
    "custom": ("Custom", {"custom_logs": "Custom Logs"}),
    "datastore": ("Database", {}),
    "elastic_stack": ("Elastic Stack", {}),
    "elasticsearch_sdk": ("Elasticsearch SDK", {}),
    "enterprise_search": (
        "Enterprise Search",
        {
            "app_search": "Application Search",
            "connector": "Connector",
            "connector_client": "Connector Client",
            "connector_package": "Connector Package",
            "content_source": "Content Source",
            "crawler": "Crawler",
            "language_client": "Language Client",
            "native_search": "Native Search",
            "sdk_search": "SDK",
            "workplace_search": "Workplace Search",
        },
    ),
    "google_cloud": ("Google Cloud", {}),
    "infrastructure": ("Infrastructure", {}),
    "languages": ("Languages", {}),
    "network": ("Network", {}),
    "observability": (
        "Observability",
        {
            "application_observability": "Application",
            "analytics_engine": "Analytics Engine",
            "big_data": "Big Data",
            "java_observability": "Java",
            "kubernetes": "Kubernetes",
            "load_balancer": "Load Balancer",
            "message_queue": "Message Broker",
            "monitoring": "Monitoring",
            "notification": "Notification",
            "process_manager": "Process Manager",
            "stream_processing": "Stream Processing",
            "virtualization": "Virtualization Platform",
            "web": "Web Server",
            "websphere": "WebSphere Application Server",
        },
    ),
    "opentelemetry": ("OpenTelemetry", {}),
    "os_system": ("Operating Systems", {}),
    "productivity": ("Productivity", {}),
    "security": (
        "Security",
        {
            "advanced_analytics_ueba": "Advanced Analytics (UEBA)",
            "asset_inventory": "Asset Inventory",
            "auditd": "AuditD",
            "authentication": "Authentication",
            "cdn_security": "Content Delivery Network",
            "cloudsecurity_cdr": "Cloud Security/CDR",
            "credential_management": "Credential Management",
            "database_security": "Database",
            "dns_security": "DNS",
            "edr_xdr": "EDR/XDR",
            "email_security": "Email",
            "firewall_security": "Firewall",
            "iam": "Identity and Access Management",
            "ids_ips": "IDS/IPS",
            "misconfiguration_workflow": "Misconfiguration Workflow",
            "network_security": "Network",
            "productivity_security": "Productivity",
            "proxy_security": "Proxy",
            "siem": "SIEM",
            "threat_intel": "Threat Intelligence",
            "vpn_security": "VPN",
            "vulnerability_management": "Vulnerability Management",
            "vulnerability_workflow": "Vulnerability Workflow",
            "web_application_firewall": "Web Application Firewall",
        },
    ),
    "support": ("Support", {}),
    "ticketing": ("Ticketing", {}),
    "version_control": ("Version Control", {}),
}

INGESTION_METHODS: dict[str, str] = {
    "cel": "API",
    "entity-analytics": "API",
    "httpjson": "API",
    "o365audit": "API",
    "salesforce": "API",
    "streaming": "API",
    "websocket": "API",
    "winlog": "API",
    "apache/metrics": "API",
    "aws/metrics": "API",
    "awsfargate/metrics": "API",
    "azure/metrics": "API",
    "containerd/metrics": "API",
    "docker/metrics": "API",
    "elasticsearch/metrics": "API",
    "enterprisesearch/metrics": "API",
    "etcd/metrics": "API",
    "gcp/metrics": "API",
    "haproxy/metrics": "API",
    "http/metrics": "API",
    "kibana/metrics": "API",
    "kubernetes/metrics": "API",
    "logstash/metrics": "API",
    "meraki/metrics": "API",
    "nats/metrics": "API",
    "nginx/metrics": "API",
    "panw/metrics": "API",
    "rabbitmq/metrics": "API",
    "stan/metrics": "API",
    "vsphere/metrics": "API",
    "windows/metrics": "API",
    "memcached/metrics": "Database",
    "mongodb/metrics": "Database",
    "mysql/metrics": "Database",
    "postgresql/metrics": "Database",
    "redis": "Database",
    "redis/metrics": "Database",
    "sql/metrics": "Database",
    "zookeeper/metrics": "Database",
    "activemq/metrics": "Jolokia",
    "jolokia/metrics": "Jolokia",
    "kafka/metrics": "Jolokia",
    "filestream": "File",
    "logfile": "File",
    "linux/metrics": "File",
    "system/metrics": "File",
    "syslog": "Network Protocol",
    "tcp": "Network Protocol",
    "udp": "Network Protocol",
    "statsd/metrics": "Network Protocol",
    "http_endpoint": "Webhook",
    "aws-s3": "AWS S3",
    "azure-blob-storage": "Azure Blob Storage",
    "aws-cloudwatch": "AWS CloudWatch",
    "azure-eventhub": "Azure Event Hub",
    "etw": "ETW",
    "gcp-pubsub": "GCP Pub/Sub",
    "gcs": "Google Cloud Storage",
    "iis/metrics": "Windows Performance Counters",
    "journald": "journald",
    "kafka": "Kafka",
    "lumberjack": "Lumberjack",
    "netflow": "NetFlow",
    "prometheus/metrics": "Prometheus",
}

CATEGORIES: dict[str, Category] = _build_categories()
_SUBCATEGORIES: dict[str, frozenset[str]] = {
    top: frozenset(c.id for c in CATEGORIES.values() if c.parent and c.parent.id == top)
    for top in _TOP_LEVEL
}
