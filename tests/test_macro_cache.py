"""The compiled-macro cache (MacroRenderer cache_dir): a later command renders from it, and an
edited macro is never served from an older compile."""

from featurekit.macros import MacroRenderer


def manifest(body: str) -> dict:
    sql = "{% macro featurekit_greeting(name) %}" + body + "{% endmacro %}"
    macro = {"name": "featurekit_greeting", "package_name": "featurekit", "macro_sql": sql}
    return {"macros": {"macro.featurekit.featurekit_greeting": macro}}


def test_renders_from_the_cache_and_recompiles_an_edited_macro(tmp_path):
    cache = tmp_path / "cache"
    first = MacroRenderer(manifest("hello {{ name }}"), cache_dir=cache).call("featurekit_greeting", "ada")
    assert first.strip() == "hello ada"
    [cached] = cache.iterdir()
    written = cached.stat()

    again = MacroRenderer(manifest("hello {{ name }}"), cache_dir=cache).call("featurekit_greeting", "bob")
    assert again.strip() == "hello bob"
    assert list(cache.iterdir()) == [cached]
    assert (cached.stat().st_ino, cached.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)  # read, not rewritten

    edited = MacroRenderer(manifest("goodbye {{ name }}"), cache_dir=cache).call("featurekit_greeting", "ada")
    assert edited.strip() == "goodbye ada"


def test_an_unwritable_cache_directory_only_costs_the_compile(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    rendered = MacroRenderer(manifest("hi {{ name }}"), cache_dir=blocked / "cache").call("featurekit_greeting", "ada")
    assert rendered.strip() == "hi ada"
