// What sticks out on the page, measured in the browser (tests/ui_browser.py: overflow).
// The document wider than the window; the navigation scrolling sideways; an element outside its
// card, tile, chip or notice (or #main); a scrolling table that scrolls; a legend label cut
// short; a ring's total crossing the ring. Visually hidden elements, <option>s, SVG and dialogs are not measured this way.
() => {
  const problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) {
    problems.push(`document ${root.scrollWidth} px wide in a ${root.clientWidth} px window`);
  }
  const nav = document.getElementById('sidenav');
  if (nav && nav.scrollWidth > nav.clientWidth + 1) {
    problems.push(`the navigation scrolls: ${nav.scrollWidth} px in ${nav.clientWidth} px`);
  }
  const main = document.getElementById('main');
  const box = main.getBoundingClientRect();
  const describe = (el) => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${[...el.classList].join('.')} "${(el.textContent || '').trim().slice(0, 40)}"`;
  for (const el of main.querySelectorAll('*')) {
    if (el.closest('.visually-hidden, option, svg, dialog')) continue;
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 && rect.height === 0) continue;
    // Each element stays inside its card, tile, chip or notice (or #main), unless it is in a
    // box that scrolls sideways (measured below).
    const holder = el.parentElement.closest('.table-scroll, .card, .stat, .chip, .notice');
    if (holder && holder.matches('.table-scroll')) continue;
    const frame = holder ? holder.getBoundingClientRect() : box;
    if (rect.right > frame.right + 1 || rect.left < frame.left - 1) {
      const where = holder ? describe(holder) : '#main';
      problems.push(`${describe(el)} spans ${Math.round(rect.left)}-${Math.round(rect.right)} outside ${where} ${Math.round(frame.left)}-${Math.round(frame.right)}`);
    }
  }
  for (const scroller of main.querySelectorAll('.table-scroll')) {
    if (scroller.scrollWidth > scroller.clientWidth + 1) {
      problems.push(`${describe(scroller.firstElementChild)} scrolls: ${scroller.scrollWidth} px in ${scroller.clientWidth} px`);
    }
  }
  for (const label of main.querySelectorAll('.legend-label, .legend-value, .legend-share')) {
    if (label.scrollWidth > label.clientWidth + 1) problems.push(`${describe(label)} is cut short`);
    const item = label.parentElement.getBoundingClientRect();
    const rect = label.getBoundingClientRect();
    if (rect.right > item.right + 1) problems.push(`${describe(label)} sticks out of its legend row`);
  }
  for (const ring of main.querySelectorAll('svg.donut-svg')) {
    const total = ring.querySelector('.donut-total').getBBox();
    const hole = 46 - 7;
    for (const [x, y] of [[total.x, total.y], [total.x + total.width, total.y], [total.x, total.y + total.height], [total.x + total.width, total.y + total.height]]) {
      if (Math.hypot(x - 60, y - 60) > hole + 0.5) {
        problems.push(`the total "${ring.querySelector('.donut-total').textContent}" crosses its ring`);
        break;
      }
    }
  }
  return problems;
}
