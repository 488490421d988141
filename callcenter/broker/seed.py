"""Demo data for the sandbox back office: one customer per tier and then some, with documented
passwords (demo data, not secrets), cash, positions, bank links and announcements.

``seed_demo`` resets these accounts to exactly this state, so running it twice is harmless.
Positions marked ``bought_today`` count as bought on the sandbox's current day (T+1 demos);
the demo IPO allotments (account 10000003) are published, and due, on that day too. Profiles
and a complaint (``demo_profiles``, ``demo_complaints``) give the service strategies something
to find on that day: a birthday, a new account, a complaint just handled.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from pydantic import SecretStr

from callcenter.broker.facts import Complaint
from callcenter.broker.interface import Announcement, Customer, IpoAllotment, Tier
from callcenter.broker.sandbox import BankAccount, Holding, Profile, SandboxBackOffice

#: every demo customer's passwords (none is weak by ``rules.check_new_password``)
DEMO_TRADING_PASSWORD = "135790"  # noqa: S105 - demo data, published in the docs
DEMO_FUND_PASSWORD = "246801"  # noqa: S105
#: the sandbox bank's password, asked for bank-to-securities transfers
DEMO_BANK_PASSWORD = "802413"  # noqa: S105


@dataclass(frozen=True, slots=True)
class DemoAccount:
    customer: Customer
    cash: Decimal
    holdings: tuple[Holding, ...]
    banks: tuple[tuple[str, str, str, Decimal], ...]   # code, name, masked account, balance


ORDINARY = "10000001"
SILVER = "10000002"
GOLD = "10000003"
PLATINUM = "10000004"
NO_BANK = "10000005"

_ICBC = ("ICBC", "工商银行", "6222****0001")
_CMB = ("CMB", "招商银行", "6225****0002")
_CCB = ("CCB", "建设银行", "6217****0003")

DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        Customer(ORDINARY, "张伟", Tier.ORDINARY, ("13800000001",), None, "zh",
                 "zhang.wei@example.com"),
        Decimal("50000.00"),
        (Holding("600036", 1000, Decimal("38.50")),
         Holding("000001", 350, Decimal("11.20"))),           # 3 lots and an odd lot of 50
        ((*_ICBC, Decimal("200000.00")),),
    ),
    DemoAccount(
        Customer(SILVER, "李娜", Tier.SILVER, ("13800000002",), None, "zh",
                 "li.na@example.com"),
        Decimal("300000.00"),
        (Holding("600519", 100, Decimal("1450.00"), bought_today=100),   # not sellable today
         Holding("300750", 200, Decimal("230.00"))),
        ((*_CMB, Decimal("500000.00")),),
    ),
    DemoAccount(
        Customer(GOLD, "王芳", Tier.GOLD, ("13800000003", "13900000003"), "A1001", "zh",
                 "wang.fang@example.com"),
        Decimal("1200000.00"),
        (Holding("601318", 2000, Decimal("48.00"), bought_today=500),   # 1500 sellable today
         Holding("000858", 500, Decimal("135.00")),
         Holding("688981", 300, Decimal("80.00"))),
        ((*_ICBC, Decimal("1000000.00")), (*_CCB, Decimal("300000.00"))),
    ),
    DemoAccount(
        Customer(PLATINUM, "陈杰", Tier.PLATINUM, ("13800000004",), "A1002", "en",
                 "chen.jie@example.com"),
        Decimal("6000000.00"),
        (Holding("600519", 1000, Decimal("1390.00")),
         Holding("002594", 2000, Decimal("300.00")),
         Holding("600518", 5000, Decimal("3.10"))),
        ((*_CMB, Decimal("3000000.00")),),
    ),
    DemoAccount(
        Customer(NO_BANK, "刘洋", Tier.ORDINARY, ("13800000005",), None, "zh",
                 "liu.yang@example.com"),
        Decimal("8000.00"),
        (),
        (),
    ),
)

DEMO_ANNOUNCEMENTS: tuple[Announcement, ...] = (
    Announcement(
        "2024-001", "交易时间提示 / Trading hours",
        "沪深A股连续竞价时间为交易日9:30至11:30、13:00至15:00。银证转账服务时间为交易日9:00至16:00。",
        "A-shares trade continuously on trading days from 9:30 to 11:30 and 13:00 to 15:00. "
        "Bank-securities transfers are available on trading days from 9:00 to 16:00.",
        dt.date(2024, 1, 2),
    ),
    Announcement(
        "2024-002", "谨防电信诈骗 / Beware of phone fraud",
        "本公司工作人员不会索取您的交易密码或资金密码。请勿向任何人透露密码。",
        "Our staff will never ask for your trading or fund password. "
        "Never tell anyone your passwords.",
        dt.date(2024, 3, 1),
    ),
    Announcement(
        "2024-003", "风险警示股票交易提示 / Risk-warning stocks",
        "ST及*ST股票每日涨跌幅限制为5%，投资者应充分了解风险。",
        "ST and *ST stocks have a daily price limit of 5%. Please consider the risks carefully.",
        dt.date(2024, 4, 15),
    ),
)


def demo_profiles(today: dt.date) -> dict[str, Profile]:
    """What the service strategies see of the demo customers on ``today``: the silver customer
    has a birthday today, the customer without a bank link opened the account yesterday, the
    platinum customer trades often, the ordinary one has not traded for half a year."""
    def ago(days: int) -> dt.date:
        return today - dt.timedelta(days=days)

    def birthday(year: int) -> dt.date:
        try:
            return today.replace(year=year)
        except ValueError:  # 29 February
            return today.replace(year=year, day=28)

    return {
        ORDINARY: Profile(ago(2100), dt.date(1975, 3, 14), last_trade_on=ago(180)),
        SILVER: Profile(ago(900), birthday(1988), last_trade_on=ago(3), trades_30d=4),
        GOLD: Profile(ago(1500), dt.date(1969, 10, 2), last_trade_on=ago(1), trades_30d=9),
        PLATINUM: Profile(ago(3000), dt.date(1960, 6, 30), last_trade_on=ago(2), trades_30d=25),
        NO_BANK: Profile(ago(1), dt.date(1999, 12, 1)),
    }


def demo_complaints(now: dt.datetime) -> dict[str, Complaint]:
    """The gold customer's complaint, handled two hours before ``now`` (a call-back is due)."""
    handled = now - dt.timedelta(hours=2)
    return {GOLD: Complaint("CP-0001", handled - dt.timedelta(days=1), handled)}


@dataclass(frozen=True, slots=True)
class DemoAllotment:
    allotment_no: str
    account: str
    code: str
    name: str
    name_en: str
    quantity: int
    price: Decimal


#: IPO allotments (新股中签) of the gold customer; fictitious issuers
DEMO_ALLOTMENTS: tuple[DemoAllotment, ...] = (
    DemoAllotment("IPO-0001", GOLD, "787901", "示范科技", "Shifan Technology", 500,
                  Decimal("23.80")),
    DemoAllotment("IPO-0002", GOLD, "001399", "样例新材", "Yangli New Materials", 1000,
                  Decimal("8.88")),
)


async def seed_demo(backoffice: SandboxBackOffice) -> None:
    """Load (or reset to) the demo customers, announcements and IPO allotments."""
    # Together: the password hashes then run side by side in worker threads.
    await asyncio.gather(*(
        backoffice.put_account(
            demo.customer,
            trading_password=SecretStr(DEMO_TRADING_PASSWORD),
            fund_password=SecretStr(DEMO_FUND_PASSWORD),
            cash=demo.cash,
            holdings=demo.holdings,
            banks=[BankAccount(code, name, masked, balance, SecretStr(DEMO_BANK_PASSWORD))
                   for code, name, masked, balance in demo.banks],
        )
        for demo in DEMO_ACCOUNTS
    ))
    for announcement in DEMO_ANNOUNCEMENTS:
        await backoffice.put_announcement(announcement)
    now = backoffice.now()
    today = now.date()
    for account, profile in demo_profiles(today).items():
        await backoffice.put_profile(account, profile)
    for account, complaint in demo_complaints(now).items():
        await backoffice.put_complaint(account, complaint)
    for a in DEMO_ALLOTMENTS:
        await backoffice.put_ipo_allotment(IpoAllotment(
            a.allotment_no, a.account, a.code, a.name, a.name_en, a.quantity, a.price,
            allotted_on=today, pay_date=today))
