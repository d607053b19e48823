// Loaded first by every LXD UI page the manager serves at /lxd-ui/<cluster>/ui/.
// The LXD UI calls LXD's API with absolute paths (/1.0/...) on its own origin; here that
// origin is the manager, whose own API is also /1.0. This sends those calls to
// /lxd-ui/<cluster>/1.0/..., which the manager passes through the cluster's tunnel.
// URLs are rewritten where they are used (fetch, XMLHttpRequest, EventSource, WebSocket),
// never in the UI's code, so its comparisons with URLs LXD returns keep working.
(() => {
  "use strict";
  const match = /^\/lxd-ui\/[^/]+/.exec(window.location.pathname);
  if (!match) return;
  const prefix = match[0];

  function routed(url) {
    let parsed;
    try {
      parsed = new URL(String(url), window.location.href);
    } catch {
      return url;
    }
    const sameHost = parsed.host === window.location.host;
    const path = parsed.pathname;
    if (!sameHost || !(path === "/1.0" || path.startsWith("/1.0/") || path.startsWith("/ui/"))) {
      return url;
    }
    parsed.pathname = prefix + path;
    return parsed.href;
  }

  const originalFetch = window.fetch.bind(window);
  window.fetch = (input, init) => {
    if (input instanceof Request) {
      const url = routed(input.url);
      return originalFetch(url === input.url ? input : new Request(url, input), init);
    }
    return originalFetch(routed(input), init);
  };

  const originalOpen = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function open(method, url, ...rest) {
    return originalOpen.call(this, method, routed(url), ...rest);
  };

  for (const name of ["WebSocket", "EventSource"]) {
    const Original = window[name];
    if (!Original) continue;
    const Wrapped = function (url, ...rest) {
      return new Original(routed(url), ...rest);
    };
    Wrapped.prototype = Original.prototype;
    Object.assign(Wrapped, Original);
    for (const key of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) {
      if (key in Original) Object.defineProperty(Wrapped, key, { value: Original[key] });
    }
    window[name] = Wrapped;
  }
})();
