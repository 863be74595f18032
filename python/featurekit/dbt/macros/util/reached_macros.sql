{#- The macros that `code`, the Jinja source of a node of `package`, reaches directly or
    through each other, as sorted unique ids (macro.<package>.<name>): what a feature view's
    definition covers, for `featurekit lock` (lockfile.py renders this macro outside dbt) and
    for its online table (view_definition, inside the build). Read from the source text,
    every branch included: a call inside `{% if is_incremental() %}` counts though a first
    build never takes it, where dbt's depends_on holds only the calls of the run it recorded.

    `sources`: {package: {macro name: source}} of the packages that count, the node's and
    featurekit's; dbt's own are left out (they change with dbt, not with a feature). In the
    Jinja code, strings and comments aside:
    - <package>.<name>, called or not, reaches that macro;
    - <name>(...) reaches the macro <name> of the node's package (where dbt resolves an
      unqualified name);
    - adapter.dispatch('<name>', ...) reaches every implementation <adapter>__<name> in the
      packages: dbt picks one by adapter and searches the project before the package.
    A name computed at run time (context[...]) is not seen. -#}
{% macro reached_macros(code, package, sources) %}
  {%- set re = modules.re -%}
  {#- a string, a filter, a test, a block's own name (all skipped), or a dotted name and a
      parenthesis when it is called -#}
  {%- set token = "'[^']*'|\"[^\"]*\"|[|]\\s*\\w+|\\bis\\s+(?:not\\s+)?\\w+|\\b(?:macro|test|materialization)\\s+\\w+"
      ~ "|(?<![\\w.])([A-Za-z_]\\w*(?:\\s*[.]\\s*[A-Za-z_]\\w*)*)(\\s*[(])?" -%}
  {%- set reached = [] -%}
  {%- set pending = [code] -%}
  {%- for _ in range(100000) -%}
    {%- if not pending -%}{% break %}{%- endif -%}
    {%- set jinja = re.findall('(?s){[{%](.*?)[}%]}', re.sub('(?s){#.*?#}', '', pending.pop())) | join('\n') -%}
    {%- set found = [] -%}
    {%- for name in re.findall('adapter\\s*[.]\\s*dispatch\\s*[(]\\s*[\'"](\\w+)', jinja) -%}
      {%- for p in sources -%}
        {%- for m in sources[p] if m.split('__', 1)[1:] == [name] and not m.startswith('__') -%}
          {%- do found.append((p, m)) -%}
        {%- endfor -%}
      {%- endfor -%}
    {%- endfor -%}
    {%- for chain, call in re.findall(token, jinja) if chain -%}
      {%- set parts = re.split('\\s*[.]\\s*', chain) -%}
      {%- if parts | length > 1 and parts[0] in sources -%}
        {%- do found.append((parts[0], parts[1])) -%}
      {%- elif parts | length == 1 and call -%}
        {%- do found.append((package, chain)) -%}
      {%- endif -%}
    {%- endfor -%}
    {%- for p, name in found -%}
      {%- set uid = 'macro.' ~ p ~ '.' ~ name -%}
      {%- if name in sources[p] and uid not in reached -%}
        {%- do reached.append(uid) -%}
        {%- do pending.append(sources[p][name]) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
  {{ return(reached | sort) }}
{% endmacro %}
