"""The catalogue of secrets redaction looks for, each rule naming where its shape comes from. Data.

Sources: `gitleaks:<rule id>` is a rule of gitleaks' default configuration (`config/gitleaks.toml`),
`github:<token>` a token of GitHub secret scanning's partner patterns, `refinery` a shape of our
own (headers, fields, URLs, the renderer's marks). The regexes are written here, not copied: they
match each shape's fixed prefix and body; the rule ids say which published shape they follow.

Prefixed tokens match wherever they start (`…xxxghp_…` too), except where the prefix is short or
common enough to occur inside words (`sk-`, `SK`, `hf_`, `AKIA`, `eyJ`, `sk_live_`): those need a
non-word character before them. Every pattern is linear: no nested unbounded repetition, and a
pattern that may fail after its prefix either has a bounded body or a prefix that cannot recur
inside the text it scans (see `benchmarks/bench_redact.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKS = "\ue000-\ue005"  # the renderer's private-use source marks (`traces.source_text`)
# Before a weak prefix: not a letter or digit (a URL-encoded `=` or space, an escaped line break,
# or the `Z` that ends a timestamp in LangSmith's dotted order, count as a start too)
_START = r"(?:(?<=%3[Dd])|(?<=%20)|(?<=\d[Zz])|(?<=\\[nrt])|(?<![A-Za-z0-9]))"
# Between a field's name and its value: quotes (escaped or not), `:` or `=` (`=>` too), blanks,
# and the renderer's marks (which stand between a key and its value until they are stripped)
_NL = r"(?:\r?\n|\\+n)"
_WB = r"(?:\b|(?<=\\[nrt]))"  # a word's start, or just after an escaped line break or tab (`\nCookie:`)
_LINE = r"(?:[^\n\\]|\\++[^n\\])"  # a character of a line, escapes (`\"`) taken whole
_SEP = rf"\\*[\"']?[ \t]*(?:=>|[:=])[ \t]*[{MARKS}]*"


@dataclass(frozen=True)
class Rule:
    kind: str  # the replacement reads [REDACTED:<kind>]
    source: str  # where the shape is published (see the module docstring)
    literals: tuple[str, ...]  # lower-case; the rule runs only when one occurs in the text (or always, if none)
    pattern: re.Pattern[str]  # group 1, when there is one, is kept (a field's name)
    # searched in one call even in a big text: a run with no bound that can cross line breaks
    # (`bearer\s+`), so its reach is not known (`redact._sub_in_pieces`)
    whole: bool = False


_BEHIND = (r"%3[Dd]", "%20", r"\d[Zz]", r"\\[nrt]")  # what `_START` accepts before a token, as lookbehinds


def _literal_first(regex: str) -> str:
    """`_START` + a literal rewritten as the literal, then `_START`'s check behind it: the same
    matches, but the engine looks for the literal (fast) instead of trying `_START`'s lookbehinds at
    every position of the text — one such rule took half a second on a 2 MB index, holding the GIL."""
    if not regex.startswith(_START):
        return regex
    rest = regex[len(_START) :]
    m = re.match(r"[A-Za-z0-9_-]{2,}", rest)
    if m is None:
        return regex
    lit, after = m.group(0), rest[m.end() :]
    if after[:1] in ("?", "*", "+", "{"):  # the last character is quantified: not part of the literal
        lit, after = lit[:-1], lit[-1] + after
    if len(lit) < 2:
        return regex
    esc = re.escape(lit)
    behind = "|".join([*(f"(?<={b}{esc})" for b in _BEHIND), f"(?<![A-Za-z0-9]{esc})"])
    return f"{esc}(?:{behind}){after}"


def _r(kind: str, source: str, literals: tuple[str, ...] | str, regex: str, *, whole: bool = False) -> Rule:
    regex = _literal_first(regex)
    lits = (literals,) if isinstance(literals, str) else literals
    if re.match(r"[A-Za-z0-9_]{2}", regex):
        # a regex that opens with a literal is searched for as fast as `in` would look for it:
        # no prefilter (each literal looked for costs a scan of the text)
        lits = ()
    return Rule(kind, source, tuple(lit.lower() for lit in lits), re.compile(regex), whole)


def _token(kind: str, source: str, prefix_literal: str, regex: str) -> Rule:
    """A token with a fixed prefix, matched wherever it starts."""
    return _r(kind, source, prefix_literal, regex)


# A field's value: to the end of the renderer's mark when the value is marked (a key of the
# trace's own structure), to its closing quote when quoted (JSON, once or twice encoded), else
# one word. Bounded, so a value with no end costs a constant.
_MARKED = rf"(?<=[\ue000\ue005])[^{MARKS}\n]{{1,4096}}"
# quoted at any depth of JSON encoding: the opening quote's backslashes (none, `\"`, `\\\"`…)
# close it; a quote with more backslashes before it belongs to a deeper level, inside the value
_QUOTED = rf"(?P<bs>\\*)\"(?:(?P=bs)\\++\"|\\++(?!\")|[^\"\\\n{MARKS}]){{1,2048}}(?:(?P=bs)\")?"
_SINGLE = rf"\\*'[^'\n{MARKS}]{{1,2048}}'?"  # escaped too (`\'…\'`, as a repr writes it)
_WORD = rf"[^\s\"'\\,;&}}\]){MARKS}]"


def _value(word_min: int, needs_digit: bool) -> str:
    digit = r"(?=[^\n]{0,66}\d)" if needs_digit else ""
    return f"(?!\\[REDACTED:){digit}(?:{_MARKED}|{_QUOTED}|{_SINGLE}|{_WORD}{{{word_min},2048}})"


# Field names whose value is a secret whatever it looks like (matched at the end of a key:
# `db_password`, `AWS_SECRET_ACCESS_KEY`, `"SessionToken"`). `pwd` only in lower case (`PWD` is
# the shell's working directory).
STRONG_FIELDS = (
    r"pass(?:word|wd|phrase)|(?-i:pwd)|client[_-]?secret|secret[_-]?(?:access[_-]?)?key|aws[_-]?secret[_-]?access[_-]?key"
    r"|private[_-]?key(?:[_-]?id)?|account[_-]?key|shared[_-]?access[_-]?(?:key|signature)"
    r"|(?:access|refresh|id|auth|session|security|bearer|identity|registry)[_-]?token"
)
# Field names common enough in prose or code that an unquoted value must hold a digit
WEAK_FIELDS = r"secret|api[_-]?token|webhook[_-]?secret|signing[_-]?(?:key|secret)|encryption[_-]?key|credentials?"

# A key of the trace's own structure whose whole value goes (an OTel header attribute
# `http.request.header.authorization` is a list of values, a cookie jar an object)
HEADERS = r"(?:proxy[_-])?authorization|(?:set[_-])?cookie|(?:x[_-])?api[_-]?key"
HEADER_NAMES = re.compile(rf"(?i)(?:{HEADERS})$")
FIELD_NAMES = re.compile(rf"(?i)(?:{STRONG_FIELDS}|{WEAK_FIELDS}|{HEADERS})$")

# Providers whose keys gitleaks finds by the provider's name in the field (`<provider>…= value`):
# the value must look like a key (10 to 150 key characters, a digit among them)
PROVIDERS = (
    "adafruit adobe airtable algolia alibaba asana atlassian confluence jira beamer bitbucket bittrex meraki "
    "cloudflare codecov cohere co_api_key coinbase confluent contentful datadog dnkey discord droneci dropbox etsy "
    "facebook fastly finicity finnhub flickr freshbooks gitter gocardless heroku hubspot intercom jfrog artifactory "
    "bintray kraken kucoin launchdarkly linear linkedin linked_in mailchimp mailgun mapbox mattermost messagebird "
    "message_bird netlify newrelic new_relic new-relic nytimes okta plaid privateai private_ai rapidapi sendbird "
    "sentry snyk sonar squarespace sumo telegram travis twitch twitter typeform yandex zendesk"
).split()

# (kind, source, literals, field names, shortest unquoted value, unquoted value needs a digit)
_FIELDS = [
    (
        "aws_secret_access_key",
        "gitleaks:generic-api-key",
        ("secret_access_key", "secretaccesskey", "secret-access-key"),
        r"secret[_-]?access[_-]?key",
        8,
        False,
    ),
    ("aws_session_token", "refinery:aws-sts", ("session", "security"), r"(?:session|security)[_-]?token", 8, False),
    (
        "azure_key",
        "github:azure-storage-account-key",
        ("accountkey", "account_key", "sharedaccess"),
        r"account[_-]?key|shared[_-]?access[_-]?(?:key|signature)",
        8,
        False,
    ),
    ("password_field", "gitleaks:generic-api-key", ("pass", "pwd"), r"pass(?:word|wd|phrase)|(?-i:pwd)", 4, False),
    (
        "secret_field",
        "gitleaks:generic-api-key",
        ("secret", "private_key", "privatekey", "private-key", "token"),
        r"client[_-]?secret|secret[_-]?key|private[_-]?key(?:[_-]?id)?"
        r"|(?:access|refresh|id|auth|bearer|identity|registry)[_-]?token",
        6,
        False,
    ),
    (
        "secret_field",
        "gitleaks:generic-api-key",
        ("secret", "token", "signing", "encryption", "credential"),
        WEAK_FIELDS,
        6,
        True,
    ),
]

RULES: list[Rule] = [
    # -- private keys (PEM, PGP, OpenSSH) and PuTTY key files
    _r(
        "private_key",
        "gitleaks:private-key",
        "private key",
        r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]{0,16384}?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
        r"|(?:[A-Za-z0-9+/=\s:-]|\\+[nr]){0,16384})",
    ),
    _r(
        "private_key",
        "refinery:putty-private-key",
        "private-lines",
        r"(Private-Lines:[ \t]*\d+)(?:[A-Za-z0-9+/=\s]|\\+[nr]){1,65536}(?:Private-(?:MAC|Hash):[ \t]*[0-9a-fA-F]+)?",
    ),
    # -- AI providers
    _token("anthropic_key", "gitleaks:anthropic-api-key", "sk-ant-", r"sk-ant-(?:api|admin|sid)\d{2}-[\w-]{20,}"),
    _token("langfuse_key", "refinery:langfuse-secret-key", "sk-lf-", r"sk-lf-[0-9a-fA-F-]{20,}"),
    _token("openai_key", "gitleaks:openai-api-key", "sk-proj-", r"sk-(?:proj|svcacct|admin)-[\w-]{20,}"),
    _r("openai_key", "github:openai-api-key", "sk-", _START + r"sk-(?:None-)?[A-Za-z0-9_-]{20,}"),
    _token("huggingface_token", "gitleaks:huggingface-organization-api-token", "api_org_", r"api_org_[A-Za-z]{34}"),
    _r("huggingface_token", "gitleaks:huggingface-access-token", "hf_", _START + r"hf_[A-Za-z0-9]{30,}"),
    _token("perplexity_key", "gitleaks:perplexity-api-key", "pplx-", r"pplx-[A-Za-z0-9]{48}"),
    # -- cloud
    _r(
        "aws_access_key_id",
        "gitleaks:aws-access-token",
        ("akia", "asia", "abia", "acca", "a3t"),
        r"(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?![A-Za-z0-9])",
    ),
    _token("google_api_key", "gitleaks:gcp-api-key", "aiza", r"AIza[\w-]{35}"),
    _r(
        "azure_client_secret",
        "gitleaks:azure-ad-client-secret",
        "q~",
        r"(?<![\w~.-])[\w~.]{3}\dQ~[\w~.-]{31,34}(?![\w~.-])",
    ),
    _token(
        "digitalocean_token", "gitleaks:digitalocean-pat", ("dop_v1_", "doo_v1_", "dor_v1_"), r"do[opr]_v1_[a-f0-9]{64}"
    ),
    _token("alibaba_access_key", "gitleaks:alibaba-access-key-id", "ltai", r"(?<![A-Za-z0-9])LTAI[A-Za-z0-9]{20}"),
    _token("heroku_key", "gitleaks:heroku-api-key-v2", "hrku-aa", r"HRKU-AA[\w-]{58}"),
    _token(
        "flyio_token",
        "gitleaks:flyio-access-token",
        ("fo1_", "fm1", "fm2_"),
        r"(?:fo1_[\w-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3})",
    ),
    _token("cloudflare_key", "gitleaks:cloudflare-origin-ca-key", "v1.0-", r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}"),
    _token("vault_token", "gitleaks:vault-service-token", ("hvs.", "hvb."), r"hv[sb]\.[\w-]{90,300}"),
    _token("openshift_token", "gitleaks:openshift-user-token", "sha256~", r"sha256~[\w-]{43}"),
    _token("terraform_token", "gitleaks:hashicorp-tf-api-token", "atlasv1", r"[A-Za-z0-9]{14}\.atlasv1\.[\w=-]{60,70}"),
    _token("pulumi_token", "gitleaks:pulumi-api-token", "pul-", r"pul-[a-f0-9]{40}"),
    _token("scalingo_token", "gitleaks:scalingo-api-token", "tk-us-", r"tk-us-[\w-]{48}"),
    _token("doppler_token", "gitleaks:doppler-api-token", "dp.", r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}"),
    _token("databricks_token", "gitleaks:databricks-api-token", "dapi", r"dapi[a-f0-9]{32}(?:-\d)?"),
    _token("planetscale_token", "gitleaks:planetscale-api-token", "pscale_", r"pscale_(?:tkn|oauth|pw)_[\w=.-]{32,64}"),
    _token(
        "grafana_token",
        "gitleaks:grafana-service-account-token",
        ("glsa_", "glc_"),
        r"gl(?:sa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|c_[A-Za-z0-9+/]{32,400}={0,3})",
    ),
    _token("grafana_token", "gitleaks:grafana-api-key", "eyjrijoi", r"eyJrIjoi[A-Za-z0-9]{70,400}={0,3}"),
    _token(
        "onepassword_token", "gitleaks:1password-service-account-token", "ops_eyj", r"ops_eyJ[A-Za-z0-9+/]{250,}={0,3}"
    ),
    _token("age_secret_key", "gitleaks:age-secret-key", "age-secret-key-1", r"AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}"),
    # -- code hosting, packages, CI
    _token(
        "github_token",
        "gitleaks:github-pat",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,})",
    ),
    _token(
        "gitlab_token",
        "gitleaks:gitlab-pat",
        "gl",
        r"(?:gl(?:pat|dt|ft|rt|soat|ffct|imt|agent|oas|ptt)-[\w-]{20,}|glcbt-[0-9a-zA-Z]{1,5}_[\w-]{20,}|GR1348941[\w-]{20})",
    ),
    _token("gitlab_token", "gitleaks:gitlab-session-cookie", "_gitlab_session=", r"(_gitlab_session=)[0-9a-z]{32}"),
    _token("npm_token", "gitleaks:npm-access-token", "npm_", r"(?i:npm_)[A-Za-z0-9]{36}"),
    _token("pypi_token", "gitleaks:pypi-upload-token", "pypi-ageichlwas5vcmc", r"pypi-AgEIcHlwaS5vcmc[\w-]{50,}"),
    _token("rubygems_token", "gitleaks:rubygems-api-token", "rubygems_", r"rubygems_[a-f0-9]{48}"),
    _token("clojars_token", "gitleaks:clojars-api-token", "clojars_", r"(?i:CLOJARS_)[A-Za-z0-9]{60}"),
    _token(
        "artifactory_key",
        "gitleaks:artifactory-api-key",
        ("akcp", "cmvmd"),
        r"(?<![A-Za-z0-9])(?:AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59})",
    ),
    _token("atlassian_token", "gitleaks:atlassian-api-token", "atatt3", r"ATATT3[\w=-]{186}"),
    _token("postman_key", "gitleaks:postman-api-token", "pmak-", r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}"),
    _token("prefect_token", "gitleaks:prefect-api-token", "pnu_", r"pnu_[A-Za-z0-9]{36}"),
    _token("readme_token", "gitleaks:readme-api-token", "rdme_", r"rdme_[a-z0-9]{70}"),
    _token(
        "sentry_token",
        "gitleaks:sentry-user-token",
        ("sntryu_", "sntrys_"),
        r"sntry(?:u_[a-f0-9]{64}|s_eyJ[A-Za-z0-9+/=_]{60,})",
    ),
    _token("infracost_token", "gitleaks:infracost-api-token", "ico-", r"(?<![A-Za-z0-9])ico-[A-Za-z0-9]{32}"),
    _token("dynatrace_token", "gitleaks:dynatrace-api-token", "dt0c01.", r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}"),
    _token(
        "octopus_key", "gitleaks:octopus-deploy-api-key", "api-", r"(?<![A-Za-z0-9])API-[A-Z0-9]{26}(?![A-Za-z0-9])"
    ),
    _token(
        "settlemint_token", "gitleaks:settlemint-personal-access-token", "sm_", r"sm_(?:aat|pat|sat)_[A-Za-z0-9]{16}"
    ),
    _token("notion_token", "gitleaks:notion-api-token", "ntn_", r"ntn_\d{11}[A-Za-z0-9]{35}"),
    _token("linear_key", "gitleaks:linear-api-key", "lin_api_", r"lin_api_[A-Za-z0-9]{40}"),
    _token("frameio_token", "gitleaks:frameio-api-token", "fio-u-", r"fio-u-[\w=-]{64}"),
    _token("typeform_token", "gitleaks:typeform-api-token", "tfp_", r"tfp_[\w.=-]{59}"),
    _token("adobe_secret", "gitleaks:adobe-client-secret", "p8e-", r"(?<![A-Za-z0-9])p8e-[A-Za-z0-9]{32}"),
    _token("intra42_secret", "gitleaks:intra42-client-secret", "s-s4t2", r"s-s4t2(?:ud|af)-[a-fA-F0-9]{64}"),
    _token("maxmind_key", "gitleaks:maxmind-license-key", "_mmk", r"[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk"),
    # -- payments, commerce, messaging
    _r(
        "stripe_key",
        "gitleaks:stripe-access-token",
        ("_live_", "_test_", "_prod_"),
        _START + r"(?:sk|rk)_(?:live|test|prod)_[0-9A-Za-z]{10,}",
    ),
    _token("stripe_webhook_secret", "github:stripe-webhook-signing-secret", "whsec_", r"whsec_[A-Za-z0-9+/=]{24,}"),
    _token("shopify_token", "gitleaks:shopify-access-token", "shp", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    _token("square_token", "gitleaks:square-access-token", ("sq0atp-", "sq0csp-"), r"sq0(?:atp|csp)-[\w-]{22,60}"),
    _token("shippo_token", "gitleaks:shippo-api-token", "shippo_", r"shippo_(?:live|test)_[a-fA-F0-9]{40}"),
    _token("duffel_token", "gitleaks:duffel-api-token", "duffel_", r"duffel_(?:test|live)_[\w=-]{43}"),
    _token(
        "flutterwave_key", "gitleaks:flutterwave-secret-key", "flwseck_test", r"FLWSECK_TEST-[a-hA-H0-9]{12,32}(?:-X)?"
    ),
    _token(
        "easypost_token", "gitleaks:easypost-api-token", ("ezak", "eztk"), r"(?<![A-Za-z0-9])EZ[AT]K[A-Za-z0-9]{54}"
    ),
    _token(
        "facebook_token",
        "gitleaks:facebook-page-access-token",
        ("eaam", "eaac"),
        r"(?<![A-Za-z0-9])EAA[MC][A-Za-z0-9]{100,}",
    ),
    _token("sendgrid_key", "gitleaks:sendgrid-api-token", "sg.", r"SG\.[\w-]{16,}\.[\w-]{16,}"),
    _token("sendinblue_key", "gitleaks:sendinblue-api-token", "xkeysib-", r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}"),
    _r("twilio_key", "gitleaks:twilio-api-key", "sk", _START + r"SK[0-9a-fA-F]{32}(?![A-Za-z0-9])"),
    _token(
        "slack_token",
        "gitleaks:slack-bot-token",
        ("xox", "xapp-"),
        r"(?:xoxe\.xox[bp]-\d-[A-Za-z0-9]{10,}|xox[abposre]-[A-Za-z0-9-]{10,}|(?i:xapp)-\d-[A-Za-z0-9-]{10,})",
    ),
    _token(
        "slack_webhook",
        "gitleaks:slack-webhook-url",
        "hooks.slack.com",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}",
    ),
    _token(
        "teams_webhook",
        "gitleaks:microsoft-teams-webhook",
        "webhook.office.com",
        r"[a-z0-9]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/-]{40,}",
    ),
    # -- JSON Web Tokens (header and payload start with `{"`, base64url `eyJ`)
    _r(
        "jwt",
        "gitleaks:jwt",
        "eyj",
        r"(?:(?<![A-Za-z0-9_-])|(?<=\\[nrt]))eyJ[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{0,2048}",
    ),
    # -- URLs: a password in any scheme's URL (`postgresql+psycopg2://user:pw@host`, `/` in it
    #    too, but not a port and path: `https://host:443/@scope`), credentials in a query
    _r(
        "url_password",
        "refinery",
        "://",
        r"(?i)((?<![A-Za-z0-9+.-])[a-z][a-z0-9+.-]{1,30}://[^\s:/@\"'<>]{0,256}+:)(?!\d+(?:/|$))[^\s@\"'<>]{1,256}+(?=@)",
    ),
    _r(
        "url_credential",
        "refinery",
        ("key=", "token=", "auth=", "secret=", "password=", "sig=", "signature="),
        r"(?i)([?&](?:api[-_]?key|key|token|access[-_]?token|auth|secret|password|sig|signature)=)[^&\s\"'#\\]{8,}",
    ),
    # -- headers: every cookie of a Cookie header, any Authorization credential
    _r(
        "cookie",
        "refinery",
        "cookie",
        rf"(?i)({_WB}(?:set-)?cookie\\*[\"']?[ \t]*:[ \t]*[{MARKS}]*\\*[\"']?[ \t]*)[^\n\"'\\{MARKS}]{{8,8192}}",
    ),
    _r(
        "authorization_header",
        "refinery",
        "authorization",
        rf"(?i)({_WB}(?:proxy-)?authorization{_SEP}\\*[\"']?[ \t]*"
        r"(?:bearer|basic|token|digest|negotiate|ntlm|aws4-hmac-sha256)[ \t]+)"
        r"[A-Za-z0-9._~+/=:,-]{3,}(?:,[ \t]*[A-Za-z0-9._~+/=:,\"-]{1,2048})?",
    ),
    _r(
        "authorization_header",
        "refinery",
        "authorization",
        rf"(?i)({_WB}(?:proxy-)?authorization{_SEP}\\*[\"']?[ \t]*)"
        r"(?!(?:bearer|basic|token|digest|negotiate|ntlm)\b)[A-Za-z0-9._~+/=-]{16,}",
    ),
    _r(
        "api_key_header",
        "refinery",
        ("api-key", "api_key", "apikey"),
        rf"(?i)({_WB}(?:x-)?api[-_]?key{_SEP}\\*[\"']?[ \t]*)(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{{8,}}",
    ),
    _r(
        "bearer_token",
        "refinery",
        "bearer",
        r"(?i)((?:\b|(?<=%20)|(?<=\\[nrt]))bearer(?:\s+|%20))[A-Za-z0-9._~+/-]{20,}=*",
        whole=True,
    ),
    # -- named fields: passwords (spaces, commas and quotes held), secrets, tokens, AWS and STS
    #    keys, Azure connection strings (`AccountKey=…;`), across the renderer's marks
    *(
        _r(kind, source, literals, rf"(?i)((?:{names}){_SEP})" + _value(word_min, needs_digit))
        for kind, source, literals, names, word_min, needs_digit in _FIELDS
    ),
    _r(
        "provider_key",
        "gitleaks:<provider>-api-key (adafruit … zendesk)",
        tuple(PROVIDERS),
        rf"(?i)((?:{'|'.join(re.escape(p) for p in PROVIDERS)})[\w.-]{{0,20}}{_SEP}\\*[\"']?)"
        r"(?!\[REDACTED:)(?=[A-Za-z0-9_.=+/-]{0,150}\d)[A-Za-z0-9_.=+/-]{10,150}",
    ),
    # -- shapes of GitHub secret scanning's supported tokens that gitleaks' catalogue lacks
    _token("langsmith_key", "github:langchain-langsmith-api-key", "lsv2_", r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}"),
    _token("groq_key", "github:groq-api-key", "gsk_", r"gsk_[A-Za-z0-9]{48,}"),
    _token("replicate_token", "github:replicate-api-token", "r8_", r"(?<![A-Za-z0-9])r8_[A-Za-z0-9]{37}"),
    _token(
        "supabase_token",
        "github:supabase-personal-access-token",
        ("sbp_", "sb_secret_"),
        r"sb(?:p_[a-f0-9]{40}|_secret_[\w-]{30,})",
    ),
    _token("tailscale_key", "github:tailscale-api-key", "tskey-", r"tskey-[a-z]+-[A-Za-z0-9]{10,}-[A-Za-z0-9]{20,}"),
    _token("figma_token", "github:figma-personal-access-token", "figd_", r"figd_[\w-]{40,}"),
    _token("xai_key", "github:xai-api-key", "xai-", r"(?<![A-Za-z0-9])xai-[A-Za-z0-9]{70,}"),
    _token("pinecone_key", "github:pinecone-api-key", "pcsk_", r"pcsk_[A-Za-z0-9]{5,}_[A-Za-z0-9]{40,}"),
    _token(
        "newrelic_key",
        "github:new-relic-user-api-key",
        ("nrak-", "nrii-", "nrjs-"),
        r"NR(?:AK-[A-Z0-9]{27}|II-[\w-]{32}|JS-[a-f0-9]{19})",
    ),
    _token("mapbox_token", "github:mapbox-secret-access-token", "sk.eyj", r"sk\.eyJ[\w.-]{60,}"),
    # -- more prefixed shapes of gitleaks' catalogue
    _r(
        "onepassword_secret_key",
        "gitleaks:1password-secret-key",
        "a3-",
        r"(?<![A-Za-z0-9])A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}",
    ),
    _r("jwt", "gitleaks:jwt-base64", "zxlk", r"ZXlK(?:aGJHY2lPaU|MGVYQWlPaUp|cmFXUWlP)[A-Za-z0-9+/_-]{40,}={0,2}"),
    _r(
        "authress_key",
        "gitleaks:authress-service-client-access-key",
        ("sc_", "ext_", "authress_"),
        r"(?<![A-Za-z0-9])(?:sc|ext|scauth|authress)_[A-Za-z0-9]{5,30}\.[A-Za-z0-9]{4,6}\.acc[_-][a-z0-9-]{10,32}"
        r"\.[a-z0-9+/_=-]{30,120}",
    ),
    _r(
        "clickhouse_key",
        "gitleaks:clickhouse-cloud-api-secret-key",
        "4b1d",
        r"(?<![A-Za-z0-9])4b1d[A-Za-z0-9]{38}(?![A-Za-z0-9])",
    ),
    _token("flutterwave_key", "gitleaks:flutterwave-public-key", "flwpubk_test", r"FLWPUBK_TEST-[a-hA-H0-9]{32}-X"),
    _token("gitlab_token", "gitleaks:gitlab-cicd-job-token", "glcbt-", r"glcbt-[0-9a-zA-Z]{1,5}_[\w-]{20}"),
    # -- Docker's config.json: `auths` → registry → `auth` (base64 of user:password)
    _r(
        "docker_auth",
        "refinery:docker-config-auths",
        "auth",
        rf"(?i)(\\*[\"']auth\\*[\"'][ \t]*:[ \t]*[{MARKS}]*\\*[\"']?)[A-Za-z0-9+/]{{8,4096}}={{0,2}}",
    ),
]


# Kubernetes Secret manifests (gitleaks:kubernetes-secret-yaml): a `data:`/`stringData:` block (its
# lines as written or JSON-escaped, as in a tool's output) within a few lines of `kind: Secret`,
# before or after it. Found as two lists of positions, not one regex spanning both, so a text
# full of either costs no more than one scan of each.
K8S_KIND = re.compile(r"(?i)(?:\b|(?<=\\n))kind:[ \t]*\\*[\"']?secret\b")
K8S_DATA = re.compile(
    rf"(?i)(^|(?<=\n)|(?<=\\n))([ \t]*(?:string)?data:[ \t]*{_NL})"
    rf"((?:[ \t]+[\w.-]+:{_LINE}{{0,8192}}(?:{_NL}|$)){{1,200}})",
    re.M,
)
K8S_REACH = 1500  # characters between `kind: Secret` and its data block, either way
