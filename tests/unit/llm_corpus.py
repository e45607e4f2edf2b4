"""Secret and identifier shapes that must never reach the model: realistic-looking, all fake.

Each entry is (line as it would appear in an event or evidence, values that must not survive masking).
The unit tests mask every line; the e2e canary test posts them as Warning events into a real analysis.
"""

from __future__ import annotations

NAMESPACE = "flamingo-ledger"
DEPLOYMENT = "pelican-payments"
POD = "pelican-payments-6f7d8c9b5-q2w4e"
NODE = "ip-10-0-3-17.eu-west-1.compute.internal"
SERVICE = "toucan-gateway"
CONFIGMAP = "heron-settings"
SECRET = "kestrel-db-credentials"
SERVICE_ACCOUNT = "osprey-deployer"
PULL_SECRET = "wren-registry-pull"
PVC = "ibis-data"
POD_UID = "0f8e2c4a-6b1d-4e3f-9a7c-5d2b8e1f0c3a"

_PEM_RSA = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAyCanaryFakeKeyMaterialQ8Zr3VwXy0Lm9Np2Ks4Tt6Uv1Bd\n"
    "c2lnbmF0dXJlc2lnbmF0dXJlQ2FuYXJ5RmFrZUtleU1hdGVyaWFs\n"
    "-----END RSA PRIVATE KEY-----"
)
_PEM_OPENSSH = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUCanaryOpenSshFakeBody0123\n"
    "-----END OPENSSH PRIVATE KEY-----"
)

SECRETS: list[tuple[str, list[str]]] = [
    ("startup failed: password=Hunter2Secret!", ["Hunter2Secret!"]),
    ("Environment: DB_PASSWORD: Tr0ub4dor-3xyzCanary", ["Tr0ub4dor-3xyzCanary"]),
    ('config {"password": "s3cr3t-Value-991"} rejected', ["s3cr3t-Value-991"]),
    ('env [{"name":"DB_PASSWORD","value":"Pa55w0rd-canary"}]', ["Pa55w0rd-canary"]),
    ('env {"name": "STRIPE_API_KEY", "value": "plainwordsonly"}', ["plainwordsonly"]),
    ("- name: REDIS_PASSWORD value: quokka-pass-77", ["quokka-pass-77"]),
    ("connect postgres://admin:Pgp4ss-canary@db.internal:5432/app failed", ["Pgp4ss-canary", "admin:Pgp4ss"]),
    ("DATABASE_URL=mysql://root:rootpw123canary@10.0.0.12/shop", ["rootpw123canary"]),
    ("cache redis://:r3dis-only-pass@cache:6379/0 refused", ["r3dis-only-pass"]),
    ("amqp://guest:Gu3st-canary@rabbit:5672/ unreachable", ["Gu3st-canary"]),
    ("dial svc-user:Zx9-canary-pw@10.0.0.1:5432 failed", ["Zx9-canary-pw"]),
    ("git clone https://deploy-bot:GitCl0neCanary@git.acme-corp.com/x.git", ["GitCl0neCanary"]),
    ("git clone https://oauth2TokenCanary77@github.com/acme/x.git", ["oauth2TokenCanary77"]),
    ("running mysql -uroot -pMyS3cretPwCanary shop", ["MyS3cretPwCanary"]),
    ("probe: redis-cli -h cache -a R3disAuthCanary ping", ["R3disAuthCanary"]),
    ("hook: curl -u ci-bot:CurlPw-7781 https://ci.acme-corp.com/hook", ["CurlPw-7781", "ci-bot:CurlPw"]),
    ("header Authorization: Basic Y2ktYm90OkN1cmxQdy03Nzgx sent", ["Y2ktYm90OkN1cmxQdy03Nzgx"]),
    ("header Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0 sent", ["9f8e7d6c5b4a39281706f5e4d3c2b1a0"]),
    ("retry with bearer CanaryBearerTok3n.abcdefgh", ["CanaryBearerTok3n"]),
    ("X-Api-Key: 3c9f1e2d-7b6a-4c5d-9e8f-1a2b3c4d5e6f", ["3c9f1e2d-7b6a-4c5d-9e8f-1a2b3c4d5e6f"]),
    ("license 7c9e6679-7425-40de-944b-e07fc1f90ae7 expired", ["7c9e6679-7425-40de-944b-e07fc1f90ae7"]),
    ("api_key=5f0c9e8d7b6a5f4e3d2c1b0a9f8e7d6c", ["5f0c9e8d7b6a5f4e3d2c1b0a9f8e7d6c"]),
    ("aws key AKIAQ3EGCANARY7EXMPL denied", ["AKIAQ3EGCANARY7EXMPL"]),
    ("session ASIAY4CANARY2EXAMPLE expired", ["ASIAY4CANARY2EXAMPLE"]),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARYKEY", ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARYKEY"]),
    ("token ghp_CanaryR3alLook1ngGitHubT0ken0123456 rejected", ["ghp_CanaryR3alLook1ngGitHubT0ken0123456"]),
    ("github_pat_11CANARY0123456789_abcdefghijklmnopqrstuvwxyzABCDEF in use", ["github_pat_11CANARY0123456789"]),
    ("gitlab glpat-xCanary9d8f7g6h5j4k rejected", ["glpat-xCanary9d8f7g6h5j4k"]),
    ("slack xoxb-1234567890-0987654321-CanaryToken1234abcd", ["xoxb-1234567890-0987654321-CanaryToken1234abcd"]),
    ("slack app xapp-1-A0CANARY-1234567890-abcdef0123", ["xapp-1-A0CANARY-1234567890-abcdef0123"]),
    (
        "notify https://hooks.slack.com/services/T0CANARY1/B0CANARY2/XyZcanary1234567890abcd",
        ["XyZcanary1234567890abcd"],
    ),
    ("stripe sk_live_51CanaryAbCdEfGhIjKlMn0123 declined", ["sk_live_51CanaryAbCdEfGhIjKlMn0123"]),
    ("stripe rk_test_CanaryRestricted0123456789", ["rk_test_CanaryRestricted0123456789"]),
    ("webhook whsec_CanaryWebhookSecret0123456789", ["whsec_CanaryWebhookSecret0123456789"]),
    ("openai sk-proj-Canary1234567890abcdefGHIJklmn", ["sk-proj-Canary1234567890abcdefGHIJklmn"]),
    ("anthropic sk-ant-api03-CanaryAnthropicKey0123456789abc", ["sk-ant-api03-CanaryAnthropicKey0123456789abc"]),
    ("maps AIzaSyCanary1234567890abcdefghijklmnop denied", ["AIzaSyCanary1234567890abcdefghijklmnop"]),
    ("gcloud ya29.CanaryGoogleOAuthAccessToken0123456789", ["ya29.CanaryGoogleOAuthAccessToken0123456789"]),
    ("npm_Canary1234567890abcdefghijklmnopqrs", ["npm_Canary1234567890abcdefghijklmnopqrs"]),
    ("twine pypi-AgEIcHlwaS5vcmcCanary1234567890abcdef", ["pypi-AgEIcHlwaS5vcmcCanary1234567890abcdef"]),
    ("mail SG.CanaryAbcdefghij12.CanaryKlmnopqrst3456789", ["SG.CanaryAbcdefghij12.CanaryKlmnopqrst3456789"]),
    ("sms SK0123456789abcdef0123456789abcdef", ["SK0123456789abcdef0123456789abcdef"]),
    ("do dop_v1_" + "0123456789abcdef" * 4, ["dop_v1_0123456789abcdef"]),
    ("vault hvs.CAESICanaryVaultToken1234567890abcdef", ["hvs.CAESICanaryVaultToken1234567890abcdef"]),
    ("docker login dckr_pat_Canary1234567890abcdefgh", ["dckr_pat_Canary1234567890abcdefgh"]),
    ("shopify shpat_0123456789abcdef0123456789abcdef", ["shpat_0123456789abcdef0123456789abcdef"]),
    ("grafana glsa_CanaryServiceAccountToken_0a1b2c3d", ["glsa_CanaryServiceAccountToken_0a1b2c3d"]),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlc2lnbmF0dXJl",
        ["eyJhbGciOiJIUzI1NiJ9", "c2lnbmF0dXJlc2lnbmF0dXJl"],
    ),
    ("key " + _PEM_RSA + " loaded", ["MIIEowIBAAKCAQEAyCanary", "c2lnbmF0dXJlc2lnbmF0dXJlQ2FuYXJ5"]),
    ("ssh " + _PEM_OPENSSH, ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUCanary"]),
    ("helm --set db.password=HelmCanary42", ["HelmCanary42"]),
    ("token: 8c1f0f5e2d3b4a69", ["8c1f0f5e2d3b4a69"]),
    ("client_secret=Cl13ntS3cretCanary", ["Cl13ntS3cretCanary"]),
    (
        "DefaultEndpointsProtocol=https;AccountName=canarystore;AccountKey=CanaryAzureKey0123456789abcdef+/==;",
        ["CanaryAzureKey0123456789abcdef"],
    ),
    ("cookie: sessionid=abc123CanarySession", ["abc123CanarySession"]),
    ("GET /x?X-Amz-Signature=0123abcdCanarySig456&sig=AzureSasCanary99", ["0123abcdCanarySig456", "AzureSasCanary99"]),
    ("cli --password Sup3rCanary login", ["Sup3rCanary"]),
    ("PGPASSWORD=PgCanary77 psql -h db", ["PgCanary77"]),
    ("kubectl create secret generic x --from-literal=password=LiteralCanary9", ["LiteralCanary9"]),
    ("key material q8Zr3VwXyCanary0Lm9Np2Ks4Tt6Uv", ["q8Zr3VwXyCanary0Lm9Np2Ks4Tt6Uv"]),
    ("password Hunter2Canary! was rejected", ["Hunter2Canary!"]),
]

IDENTIFIERS: list[tuple[str, list[str]]] = [
    (
        f"Back-off restarting failed container app in pod {POD}_{NAMESPACE}({POD_UID})",
        [POD, NAMESPACE, POD_UID, "pelican"],
    ),
    (f"Killing container in pod mystery-worker-5d6f7-x9k2p_{NAMESPACE}({POD_UID})", ["mystery-worker", NAMESPACE]),
    (f'pod="{NAMESPACE}/{POD}" err="context deadline exceeded"', [NAMESPACE, POD]),
    (f'MountVolume.SetUp failed: configmap "{CONFIGMAP}" not found', [CONFIGMAP]),
    (f'MountVolume.SetUp failed: secret "{SECRET}" not found', [SECRET]),
    (f'Error creating: serviceaccount "{SERVICE_ACCOUNT}" not found', [SERVICE_ACCOUNT]),
    (f"Unable to retrieve some image pull secrets ({PULL_SECRET}); attempting to pull anyway", [PULL_SECRET]),
    (f'persistentvolumeclaim "{PVC}" not found', [PVC]),
    (f'Failed to pull image "registry.acme-corp.com/payments/{DEPLOYMENT}:2.0"', ["acme-corp", DEPLOYMENT]),
    ("pull 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4 denied", ["123456789012"]),
    ("assume arn:aws:iam::210987654321:role/canary-deployer failed", ["210987654321", "canary-deployer"]),
    ("access projects/canary-project-4821/secrets/db denied", ["canary-project-4821"]),
    ("pull gcr.io/canary-gcp-proj/api:1.0 failed", ["canary-gcp-proj"]),
    ("dial tcp: lookup payments-db.eu1.acme-corp.net: no such host", ["acme-corp", "payments-db"]),
    ("alert sent to oncall@canary-corp.example", ["oncall@canary-corp.example", "canary-corp"]),
    ("readiness probe to 10.42.17.99:8080 failed", ["10.42.17.99"]),
    ("route via fd00:10:42::17 dropped", ["fd00:10:42::17"]),
    (f"dial {SERVICE}.{NAMESPACE}.svc.cluster.local:443: refused", [SERVICE, NAMESPACE]),
    (f"node {NODE} is NotReady", [NODE, "ip-10-0-3-17"]),
    ("billing account id 345678901234 over quota", ["345678901234"]),
    (f"GET /api/v1/namespaces/{NAMESPACE}/pods/{POD} 403", [NAMESPACE, POD]),
    (f"{DEPLOYMENT}-6f7d8c9b5-zz8k1 OOMKilled", [DEPLOYMENT]),
]

CORPUS = SECRETS + IDENTIFIERS
