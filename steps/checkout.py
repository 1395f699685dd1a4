"""The demo shop's hosted checkout, written in Python: the journey `scripted_checkout` of journeys.yaml.

What YAML actions cannot say: a cookie banner that shows only sometimes (a branch), the first
product in stock (a loop), the card number typed into the payment provider's iframe, and the app's
own state waited on. The step gets `token` from the YAML login before it and `sets` `order_id` for
the step after it. See docs/scripts.md for the API. (It imports nothing: `validate` imports it in a
child process, and Playwright's modules would add a fifth of a second there.)
"""


async def checkout(ctx):
    base = ctx.vars["base"]
    async with ctx.step("cart"):  # the API, on the run's cookie jar, with the token the login extracted
        response = await ctx.http.get(f"{base}/api/cart/demo-cart",
                                      headers={"Authorization": f"Bearer {ctx.vars['token']}"})
        assert response.status == 200, f"cart: HTTP {response.status}"
        assert (await response.json())["total"] > 0, "the cart is empty"

    page = await ctx.page()  # the run's page: the login's session cookie is already there
    async with ctx.step("open"):
        await page.goto(f"{base}/checkout/hosted")
        await page.wait_for_function("() => window.demoShop && window.demoShop.ready")
    if await page.locator("#consent").is_visible():
        async with ctx.step("consent"):
            await page.locator("#accept").click()

    async with ctx.step("pick"):
        for item in await page.locator("#products li").all():
            if int(await item.get_attribute("data-stock") or 0) > 0:
                await item.locator(".add").click()
                break
        else:
            raise AssertionError("no product in stock")

    async with ctx.step("card"):  # the field lives in the payment provider's frame
        await page.frame_locator("#card-frame").locator("#number").fill("4242 4242 4242 4242")

    async with ctx.step("pay"):
        await page.locator("#pay").click()
        # the app's own state: an order, or the status saying why not
        await page.wait_for_function("() => window.demoShop.order || "
                                     "document.querySelector('.status').textContent.startsWith('Failed')",
                                     timeout=10_000)
        status = await page.locator(".status").inner_text()
        assert status == "Paid", f"the shop says {status!r}"
        ctx.vars["order_id"] = await page.evaluate("() => window.demoShop.order")
