def test_probe(page, watch, live_server):
    page.goto("/")
    print("htmx", page.evaluate("typeof window.htmx"))
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.x=1'; document.body.append(s);
      document.body.setAttribute('style', 'color: red'); }""")
    page.goto("/nope")
    page.goto("/admin/")
    print("CSP", watch.csp_violations())
    print("console", watch.console_errors)
    print("pageerr", watch.page_errors)
    print("inpage", watch.in_page_csp(page))
