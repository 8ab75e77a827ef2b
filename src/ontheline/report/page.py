"""The HTML page shell shared by every report: inline CSS and a few lines of JS, nothing fetched."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Sequence
from html import escape

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
.meta{color:#666}.banner{padding:10px 14px;border-radius:6px;margin:12px 0}
.ok{background:#e8f5e9;border:1px solid #81c784}.warn{background:#fff3e0;border:1px solid #ffb74d}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 9px;border-bottom:1px solid #eee;text-align:right}th{background:#f6f6f6;cursor:pointer;user-select:none}
td:first-child,th:first-child,td.text{text-align:left}tr.flag td{background:#fff8ee}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.best{font-weight:600}.plots{display:flex;flex-wrap:wrap;gap:12px}
details{margin:4px 0}summary{cursor:pointer}figure{margin:0}figcaption{font-size:12px;color:#555;max-width:380px}.tick,.legend{font-size:10px;fill:#444}.axis{font-size:11px;fill:#222}
"""

# Click a header to sort by that column; numbers sort numerically, empty cells last. Sections
# stored compressed (data-gz: base64 of gzip) are inflated when first opened, which keeps a
# report with a hundred plots small; their tables become sortable then.
_JS = """
function makeSortable(table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var text = row.cells[col].textContent.trim();
        var number = parseFloat(text);
        return text === "" ? null : (isNaN(number) ? text : number);
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null) return 1; if (y === null) return -1;
        var order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return asc ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
}
document.querySelectorAll("table.sortable").forEach(makeSortable);
document.querySelectorAll("details").forEach(function (details) {
  details.addEventListener("toggle", function () {
    var holder = details.querySelector("[data-gz]");
    if (!details.open || !holder) return;
    var bytes = Uint8Array.from(atob(holder.getAttribute("data-gz")), function (c) { return c.charCodeAt(0); });
    holder.removeAttribute("data-gz");
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    new Response(stream).text().then(function (html) {
      holder.innerHTML = html;
      holder.querySelectorAll("table.sortable").forEach(makeSortable);
    });
  });
});
"""


def compressed(html: str) -> str:
    """A ``<div>`` whose content is ``html`` gzipped and base64-encoded, inflated in the browser when
    its ``<details>`` is first opened (about 6x smaller; nothing is fetched)."""
    payload = base64.b64encode(gzip.compress(html.encode("utf-8", "backslashreplace"), mtime=0)).decode("ascii")
    return f'<div class="lazy" data-gz="{payload}"></div>'


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML document."""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>'
        f"<body>{body}<script>{_JS}</script></body></html>"
    )


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    sortable: bool = True,
    flags: Sequence[bool] = (),
    element_id: str = "",
) -> str:
    """A table; cells are escaped, numbers formatted with :func:`cell`."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for k, row in enumerate(rows):
        css = ' class="flag"' if k < len(flags) and flags[k] else ""
        body.append(f"<tr{css}>" + "".join(cell(v) for v in row) + "</tr>")
    kind = (' class="sortable"' if sortable else "") + (f' id="{escape(element_id)}"' if element_id else "")
    return f"<table{kind}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def cell(value: object) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, float)):
        return f"<td>{value:.2f}</td>" if isinstance(value, float) else f"<td>{value}</td>"
    return f'<td class="text">{escape(str(value))}</td>'
