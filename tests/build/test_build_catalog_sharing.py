"""The portfolio is shared to OUs from the build account, which AWS allows only to the management
account or a Service Catalog delegated administrator with organizations access enabled
(Service Catalog API reference, CreatePortfolioShare). The org stack (deployed first) sets both."""

from __future__ import annotations

BUILD = "333333333333"


def test_portfolio_shares_to_ous_come_from_the_service_catalog_delegated_administrator(stack_run):
    build = stack_run("build")
    shares = build.of_type("aws:servicecatalog/portfolioShare:PortfolioShare")
    assert shares and {s.inputs["type"] for s in shares} == {"ORGANIZATIONAL_UNIT"}
    org = stack_run("org")
    admins = {
        (a.inputs["accountId"], a.inputs["servicePrincipal"])
        for a in org.of_type("aws:organizations/delegatedAdministrator:DelegatedAdministrator")
    }
    # The org stack registers the build account it creates (under mocks its id is that resource's id).
    catalog_admins = {account for account, service in admins if service == "servicecatalog.amazonaws.com"}
    assert catalog_admins in ({BUILD}, {"org-organization-account-build-id"})
    access = org.of_type("aws:servicecatalog/organizationsAccess:OrganizationsAccess")
    assert [a.inputs["enabled"] for a in access] == [True]
