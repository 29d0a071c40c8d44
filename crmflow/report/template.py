"""The report's HTML template (a Python string so it ships inside the package)."""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crmflow report — {{ as_of }}</title>
<script>
/* Any script error while drawing is shown at the top of the page and counted in
   data-render-errors, so a broken chart is never silently missing. */
(function () {
  var errors = [];
  function record(message) {
    errors.push(String(message));
    document.documentElement.setAttribute("data-render-errors", String(errors.length));
    var box = document.getElementById("render-errors");
    if (box) { box.hidden = false; box.textContent = "Some charts failed to draw: " + errors.join("; "); }
  }
  window.addEventListener("error", function (e) { record(e.message || e); });
  window.addEventListener("unhandledrejection", function (e) { record(e.reason || "promise rejected"); });
  document.documentElement.setAttribute("data-render-errors", "0");
})();
</script>
<script>{{ plotly_js | safe }}</script>
<style>
  :root { --accent: #3b5bdb; --ink: #212529; --muted: #868e96; --line: #e9ecef; --bg: #f8f9fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
         background: var(--bg); }
  header { background: linear-gradient(120deg, #364fc7, #4c6ef5); color: #fff; padding: 28px 40px 72px; }
  header h1 { margin: 0 0 6px; font-size: 26px; font-weight: 650; }
  header p { margin: 0; opacity: .85; }
  main { max-width: 1180px; margin: -52px auto 40px; padding: 0 24px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(145px, 1fr)); gap: 14px; }
  .card { background: #fff; border-radius: 10px; padding: 14px 16px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
  .card .label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
  .card .value { font-size: 22px; font-weight: 650; margin: 4px 0 2px; color: var(--accent);
                 font-variant-numeric: tabular-nums; white-space: nowrap; }
  .card .value .unit { font-size: 13px; font-weight: 600; }
  .card .value.not-available { font-size: 15px; font-weight: 600; color: var(--muted); padding: 5px 0 4px;
                               white-space: normal; }
  .card .hint { font-size: 12px; color: var(--muted); }
  nav { margin: 22px 0 4px; font-size: 13px; display: flex; flex-wrap: wrap; gap: 6px 16px; }
  nav a { color: var(--accent); text-decoration: none; white-space: nowrap; }
  section { background: #fff; border-radius: 10px; margin-top: 18px; padding: 18px 22px;
            box-shadow: 0 1px 3px rgba(0,0,0,.08); }
  section h2 { margin: 0 0 4px; font-size: 18px; }
  .caption { margin: 0 0 10px; color: #495057; font-size: 14px; }
  .empty { padding: 26px; text-align: center; color: var(--muted); background: var(--bg); border-radius: 8px;
           border: 1px dashed #ced4da; }
  .empty strong { display: block; color: #495057; margin-bottom: 4px; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; margin-top: 12px; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { color: var(--muted); font-weight: 600; font-size: 12px; }
  #render-errors { background: #fff5f5; color: #c92a2a; border: 1px solid #ffc9c9; padding: 10px 14px;
                   border-radius: 8px; margin-top: 14px; }
  footer { text-align: center; color: var(--muted); font-size: 12px; padding: 10px 0 30px; }
</style>
</head>
<body>
<header>
  <h1>crmflow report</h1>
  <p>As of {{ as_of }} · {{ chart_count }} charts · money in {{ currency }} (the reporting currency, dbt var
     reporting_currency)</p>
</header>
<main>
  <div class="cards">
  {% for label, value, hint in cards %}
    <div class="card"><div class="label">{{ label }}</div>
      {% if value == not_available %}<div class="value not-available">{{ value }}</div>
      {% elif value.endswith(" " ~ currency) %}<div class="value">{{ value[:-(currency | length) - 1] }}
        <span class="unit">{{ currency }}</span></div>
      {% else %}<div class="value">{{ value }}</div>{% endif %}
      <div class="hint">{{ hint }}</div></div>
  {% endfor %}
  </div>
  <div id="render-errors" hidden></div>
  <nav>{% for s in sections %}<a href="#{{ s.anchor }}">{{ s.title }}</a>{% endfor %}</nav>
  {% for s in sections %}
  <section id="{{ s.anchor }}">
    <h2>{{ s.title }}</h2>
    <p class="caption">{{ s.caption }}</p>
    {% if s.links %}<p class="caption">{% for label, href in s.links %}<a href="{{ href }}">{{ label }}</a> {% endfor %}</p>{% endif %}
    {% if s.chart_html %}{{ s.chart_html | safe }}{% else %}
    <div class="empty"><strong>{{ no_data }}</strong> <span class="why">{{ s.empty }}</span></div>{% endif %}
    {% if s.table %}
    <table>
      <thead><tr>{% for key in s.table[0] %}<th>{{ key }}</th>{% endfor %}</tr></thead>
      <tbody>{% for row in s.table %}<tr>{% for value in row.values() %}<td>{{ value }}</td>{% endfor %}</tr>
      {% endfor %}</tbody>
    </table>
    {% endif %}
  </section>
  {% endfor %}
</main>
<footer>Generated by crmflow · attribution, uplift and A/B method: docs/measurement.md</footer>
</body>
</html>
"""
