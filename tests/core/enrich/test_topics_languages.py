"""Topics of unseen posts in each supported language, as the service classifies them.

The default enricher: language detection, the shipped taxonomy and the shipped model in blend
mode. None of these posts is in the training or the held-out set; each names its topic the way a
channel would, without necessarily using the taxonomy's own words.
"""

from __future__ import annotations

import pytest

from service.core.enrich import Enricher

D, M, E, N = "diplomacy", "conflict_military", "economy_finance", "energy_nuclear"
S, H, C, T = "space_science", "human_rights_law", "crypto", "tech"

CASES: dict[str, list[tuple[str, str]]] = {
    "ru": [
        (D, "Глава МИД Венгрии прилетел в Москву, переговоры с Лавровым продлились три часа."),
        (D, "Посла Эстонии вызвали на Смоленскую площадь: ему заявлен решительный протест."),
        (M, "Над Воронежской областью ночью сбиты 14 беспилотников, обломки повредили склад."),
        (M, "Армия Израиля начала наступление на юге Ливана, идут ожесточённые бои."),
        (E, "ЦБ повысил ключевую ставку до 18%: инфляция ускорилась, рубль слабеет."),
        (E, "Розничные продажи в США в марте выросли на 1,4%, доходность трежерис растёт."),
        (N, "Добыча газа в России за год выросла на 7%, экспорт СПГ — рекордный."),
        (N, "На Курской АЭС запущен новый энергоблок с реактором ВВЭР-ТОИ."),
        (S, "Астрономы обнаружили у соседней звезды планету в зоне обитаемости."),
        (S, "Экипаж «Союза МС» успешно пристыковался к МКС после двухсуточного полёта."),
        (H, "Суд приговорил бывшего мэра к 9 годам колонии за взятки."),
        (H, "Правозащитники сообщили о новых задержаниях активистов после пикета."),
        (C, "Биткоин подешевел на 6% за сутки, эфир потерял 9%."),
        (C, "Криптобиржа приостановила вывод средств после взлома горячего кошелька."),
        (T, "Новая версия нейросети от Сбера научилась писать код и анализировать таблицы."),
        (T, "Хакеры взломали базу интернет-магазина: утекли данные 2 млн покупателей."),
    ],
    "uk": [
        (D, "Сибіга провів переговори з міністром закордонних справ Литви у Вільнюсі."),
        (D, "Україна та Польща підписали декларацію про стратегічне партнерство."),
        (M, "Повітряні сили: вночі ворог атакував 60 ударними дронами, збито 48."),
        (M, "Сили оборони відбили штурм біля Часового Яру, противник зазнав втрат."),
        (E, "НБУ підвищив облікову ставку до 14,5%, щоб стримати інфляцію."),
        (E, "Гривня послабилася до 42 за долар на міжбанку, попит на валюту зріс."),
        (N, "Укренерго запроваджує графіки відключень світла у восьми областях."),
        (N, "Енергоатом: Рівненська АЕС повернулася до роботи на повну потужність."),
        (S, "Українські астрономи відкрили комету, яку назвали на честь Києва."),
        (S, "Науковці НАН України описали новий вид ящірок у Карпатах."),
        (H, "ВАКС засудив ексзаступника міністра до 7 років позбавлення волі."),
        (H, "Прокуратура повідомила про підозру у катуванні цивільних на Херсонщині."),
        (C, "Біткоїн оновив рекорд: криптовалюта подорожчала до 115 тисяч доларів."),
        (C, "Українська криптобіржа запустила стейкінг ефіріуму для клієнтів."),
        (T, "Мінцифри запускає в Дії нову послугу для ФОП на основі штучного інтелекту."),
        (T, "Кібератака на провайдера залишила без інтернету три міста."),
    ],
    "en": [
        (D, "The foreign ministers of Japan and South Korea met in Tokyo to mend ties."),
        (D, "Brazil recalls its ambassador from Israel after a diplomatic row."),
        (M, "Russian artillery shelled Kherson overnight, killing two civilians."),
        (M, "The US Navy intercepted four drones launched by Houthi rebels."),
        (E, "The Fed held rates steady; Powell said inflation is still too high."),
        (E, "Unemployment in the euro zone fell to a record low of 6.2%."),
        (N, "Oil prices jumped 4% after OPEC+ agreed deeper output cuts."),
        (N, "A heatwave pushed Texas electricity demand to an all-time high."),
        (S, "NASA's Europa Clipper sent its first images from deep space."),
        (S, "Researchers published a study showing octopuses dream, in Nature."),
        (H, "A court in Ankara jailed a journalist for 'spreading disinformation'."),
        (H, "Human rights groups condemned the mass arrests of protesters in Belgrade."),
        (C, "Solana jumped 12% as ETF filings piled up; memecoins rallied too."),
        (C, "A DeFi protocol lost $80m in an exploit of its lending pools."),
        (T, "Apple released iOS 19 with a new AI assistant built into Siri."),
        (T, "Ransomware gang claims a cyberattack on a major UK retailer."),
    ],
    "es": [
        (D, "El canciller de Brasil se reunió en Madrid con su homólogo español."),
        (D, "Chile y Bolivia restablecen relaciones diplomáticas tras 45 años."),
        (M, "Misiles rusos alcanzan Odesa: al menos cinco muertos y 20 heridos."),
        (M, "El ejército colombiano bombardea un campamento de la guerrilla."),
        (E, "El Banco Central Europeo recorta los tipos al 2%; el euro se debilita."),
        (E, "La inflación en Argentina baja al 2% mensual y el peso se estabiliza."),
        (N, "El precio del barril de Brent sube a 84 dólares por tensiones en Irán."),
        (N, "Ecuador anuncia cortes de luz de ocho horas por la sequía en las represas."),
        (S, "Astrónomos detectan un agujero negro que engulle una estrella."),
        (S, "La NASA lanza una sonda para estudiar el viento solar."),
        (H, "Un tribunal de Lima condena a 15 años de prisión a un exministro."),
        (H, "Amnistía Internacional denuncia torturas a presos en El Salvador."),
        (C, "El bitcoin cae por debajo de 70.000 dólares tras la venta de grandes ballenas."),
        (C, "Un exchange de criptomonedas sufre un hackeo de 40 millones en ether."),
        (T, "OpenAI presenta un nuevo modelo de inteligencia artificial en español."),
        (T, "Un ciberataque deja sin servicio la web de la Agencia Tributaria."),
    ],
    "fr": [
        (D, "Le ministre des Affaires étrangères reçoit son homologue égyptien à Paris."),
        (D, "La France rappelle son ambassadeur au Mali pour consultations."),
        (M, "Des frappes aériennes russes ont touché Kharkiv, faisant trois morts."),
        (M, "L'armée française déploie des soldats supplémentaires en Estonie."),
        (E, "L'inflation en zone euro recule à 1,9 %, la BCE pourrait baisser ses taux."),
        (E, "Le CAC 40 gagne 2 % porté par les valeurs bancaires."),
        (N, "EDF redémarre deux réacteurs nucléaires après la maintenance estivale."),
        (N, "Le prix du gaz naturel en Europe bondit de 15 % avec la vague de froid."),
        (S, "Des astronomes découvrent une exoplanète recouverte d'océans."),
        (S, "La fusée Ariane 6 place en orbite un satellite météorologique européen."),
        (H, "Le tribunal correctionnel condamne un élu à deux ans de prison avec sursis."),
        (H, "Amnesty dénonce des arrestations arbitraires de journalistes en Tunisie."),
        (C, "Le bitcoin recule de 5 %, les liquidations dépassent 500 millions de dollars."),
        (C, "Une plateforme d'échange de cryptomonnaies piratée : 30 millions en ether volés."),
        (T, "Mistral AI lance un nouveau modèle d'intelligence artificielle open source."),
        (T, "Une cyberattaque paralyse le réseau informatique d'un hôpital de Rouen."),
    ],
    "de": [
        (D, "Außenminister Wadephul trifft seinen französischen Amtskollegen in Paris."),
        (D, "Die Bundesregierung bestellt den chinesischen Botschafter ein."),
        (M, "Russische Drohnen greifen Odessa an, die Luftabwehr schießt 30 Drohnen ab."),
        (M, "Die Bundeswehr beschafft weitere Patriot-Systeme für die Luftverteidigung."),
        (E, "Die EZB senkt den Leitzins, die Inflation in der Eurozone sinkt auf 2 Prozent."),
        (E, "Der DAX steigt auf ein Rekordhoch, Autowerte legen kräftig zu."),
        (N, "Der Strompreis an der Börse fällt, weil Windräder so viel Strom liefern wie nie."),
        (N, "Die Gasspeicher sind vor dem Winter zu 90 Prozent gefüllt."),
        (S, "Forschende entdecken mit dem Webb-Teleskop eine ferne Galaxie."),
        (S, "Die ESA schickt eine Raumsonde zum Asteroiden Apophis."),
        (H, "Das Landgericht verurteilt einen Betrüger zu vier Jahren Haft."),
        (H, "Amnesty International kritisiert Folter in libyschen Gefängnissen."),
        (C, "Bitcoin fällt unter 90.000 Dollar, Krypto-Anleger werden nervös."),
        (C, "Eine Krypto-Börse meldet einen Hackerangriff: Ether im Wert von 20 Millionen weg."),
        (T, "Google stellt ein neues KI-Modell vor, das Videos in Echtzeit versteht."),
        (T, "Ein Cyberangriff legt die IT einer Stadtverwaltung tagelang lahm."),
    ],
}

NO_TOPIC = {
    "ru": [
        "«Спартак» обыграл «Локомотив» 2:0, оба мяча забил Соболев.",
        "Завтра в Петербурге дожди и ветер до 15 м/с, температура около +8.",
    ],
    "uk": [
        "«Динамо» розгромило «Зорю» 4:1 у матчі чемпіонату України.",
        "Рецепт дня: борщ із пампушками та часниковим соусом 🥣",
    ],
    "en": [
        "Manchester City beat Everton 3-1; Haaland scored twice.",
        "Rain and strong winds expected across Scotland this weekend.",
    ],
    "es": [
        "El Betis gana al Valencia 2-0 con un gol de Isco.",
        "Receta: gazpacho andaluz con tomate, pepino y pimiento.",
    ],
    "fr": [
        "Le Stade Toulousain remporte le Top 14 face à Bordeaux.",
        "Météo : un week-end ensoleillé sur tout le pays, jusqu'à 28 °C.",
    ],
    "de": [
        "Der VfB Stuttgart gewinnt 2:1 gegen Werder Bremen.",
        "Rezept: Apfelstrudel mit Vanillesoße, ganz einfach gemacht.",
    ],
}


def topics_of(enricher: Enricher, text: str) -> tuple[str | None, set[str]]:
    lang = enricher.detect_language(text)
    return lang, {topic.id for topic in enricher.topics.classify(text, lang)}


@pytest.mark.parametrize(
    ("lang", "topic", "text"),
    [(lang, topic, text) for lang, cases in CASES.items() for topic, text in cases],
)
def test_unseen_post_gets_its_topic(enricher: Enricher, lang: str, topic: str, text: str) -> None:
    detected, topics = topics_of(enricher, text)
    assert detected == lang
    assert topic in topics, topics


@pytest.mark.parametrize(
    ("lang", "text"), [(lang, text) for lang, texts in NO_TOPIC.items() for text in texts]
)
def test_unseen_off_topic_post_gets_none(enricher: Enricher, lang: str, text: str) -> None:
    assert topics_of(enricher, text) == (lang, set())


def test_the_default_enricher_blends_the_shipped_model(enricher: Enricher) -> None:
    assert enricher.topics.mode == "blend"
    assert enricher.topics.model is not None
    assert set(enricher.topics.model.topics) == set(enricher.topics.taxonomy.ids)
