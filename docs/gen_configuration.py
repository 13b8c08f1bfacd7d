"""Regenerate docs/configuration.md from the Settings model: `python docs/gen_configuration.py > docs/configuration.md`.

tests/test_docs.py fails when the committed page and this output differ.
"""

from __future__ import annotations

from pathlib import Path

from freshrec.config import Settings

HEADER = """# Configuration

Every option freshrec has, generated from `freshrec.config.Settings` by `docs/gen_configuration.py`.
Values are layered, later wins: defaults < TOML file (`--config FILE` or `FRESHREC_CONFIG`) <
environment (`FRESHREC_<SECTION>__<FIELD>`, e.g. `FRESHREC_TRAIN__EPOCHS=50`) < command-line flags.
Lists in environment variables are JSON (`FRESHREC_EVENTS__CUSTOM_TYPES='["wishlist"]'`). Store URLs pick
the backend by scheme (`sqlite:///relative.db`, `sqlite:////absolute.db`, `memory://`).

```toml
# freshrec.toml: sections as below
[train]
epochs = 50
[serving]
port = 8080
```
"""


def render() -> str:
    lines = [HEADER]
    for section, field in Settings.model_fields.items():
        model = field.annotation
        lines.append(f"## [{section}]\n")
        lines.append((model.__doc__ or "").strip().splitlines()[0] + "\n")
        lines.append("| option | default | environment | description |")
        lines.append("|---|---|---|---|")
        for name, f in model.model_fields.items():
            default = f.default if f.default_factory is None else f.default_factory()
            if isinstance(default, Path):
                default = str(default)
            env = f"FRESHREC_{section.upper()}__{name.upper()}"
            lines.append(f"| `{name}` | `{default!r}` | `{env}` | {f.description or ''} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
