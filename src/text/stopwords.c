/*
 * stopwords.c: tierdb's own stopword lists, one per covered language.
 * Layer: text. Used by language analyzers with stopwords on (analyzer.c).
 *
 * What a list holds: the most frequent function words of the language
 * (articles, pronouns, prepositions, conjunctions, auxiliary and modal verb
 * forms, a few adverbs), written the way the analyzer produces tokens:
 * case-folded (lower case), precomposed accents (NFC, as typed text is),
 * one token each (the analyzer splits at apostrophes, so elided forms such
 * as French "l'" appear as the single letter "l"). Words are removed
 * BEFORE stemming, so the lists hold surface forms, not stems.
 *
 * Languages covered: english (also used for "porter"), german, french,
 * spanish, italian, portuguese, dutch, swedish, norwegian, danish,
 * finnish, russian. Other Snowball languages stem but have no stopword
 * list; asking for stopwords there is an error (analyzer.c).
 * Immutable static data; thread-safe.
 */
#include <stddef.h>
#include <string.h>

#include "text/analyzer.h"

static const char *const english[] = {
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
    "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but",
    "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
    "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself",
    "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just",
    "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once",
    "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "s", "same", "she",
    "should", "so", "some", "such", "t", "than", "that", "the", "their", "theirs", "them",
    "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too",
    "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
    "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself",
    "yourselves",
};

static const char *const german[] = {
    "aber", "alle", "allem", "allen", "aller", "alles", "als", "also", "am", "an", "andere",
    "anderem", "anderen", "anderer", "anderes", "auch", "auf", "aus", "bei", "bin", "bis",
    "bist", "da", "damit", "dann", "das", "dass", "daß", "dein", "deine", "dem", "den", "denn",
    "der", "des", "dessen", "dich", "die", "dies", "diese", "diesem", "diesen", "dieser",
    "dieses", "dir", "doch", "dort", "du", "durch", "ein", "eine", "einem", "einen", "einer",
    "eines", "er", "es", "etwas", "euch", "euer", "eure", "für", "gegen", "habe", "haben",
    "hat", "hatte", "hier", "ich", "ihm", "ihn", "ihnen", "ihr", "ihre", "ihrem", "ihren",
    "ihrer", "im", "in", "ist", "ja", "jede", "jedem", "jeden", "jeder", "jedes", "jetzt",
    "kann", "kein", "keine", "mich", "mir", "mit", "muss", "nach", "nicht", "nichts", "noch",
    "nun", "nur", "ob", "oder", "ohne", "sehr", "sein", "seine", "seinem", "seinen", "seiner",
    "sich", "sie", "sind", "so", "um", "und", "uns", "unser", "unter", "vom", "von", "vor",
    "war", "waren", "was", "weil", "wenn", "wer", "wie", "wieder", "wir", "wird", "wo", "zu",
    "zum", "zur", "über",
};

static const char *const french[] = {
    "à", "ai", "au", "aussi", "aux", "avait", "avaient", "avec", "avez", "avons", "c", "ce",
    "cela", "ces", "cet", "cette", "comme", "d", "dans", "de", "des", "du", "elle", "elles",
    "en", "entre", "es", "est", "et", "été", "étaient", "était", "êtes", "être", "eu", "il",
    "ils", "j", "je", "l", "la", "le", "les", "leur", "leurs", "lui", "m", "ma", "mais", "me",
    "même", "mes", "moi", "mon", "n", "ne", "nos", "notre", "nous", "on", "ont", "ou", "où",
    "par", "pas", "plus", "pour", "qu", "que", "qui", "s", "sa", "sans", "se", "sera",
    "serait", "ses", "si", "sommes", "son", "sont", "sous", "suis", "sur", "t", "ta", "te",
    "tes", "toi", "ton", "très", "tu", "un", "une", "vos", "votre", "vous", "y", "ça",
};

static const char *const spanish[] = {
    "a", "al", "algo", "ante", "antes", "como", "con", "contra", "cual", "cuando", "de", "del",
    "desde", "donde", "durante", "e", "el", "él", "ella", "ellas", "ellos", "en", "entre",
    "era", "es", "esa", "esas", "ese", "eso", "esos", "esta", "está", "están", "estas", "este",
    "esto", "estos", "fue", "fueron", "ha", "han", "hasta", "hay", "la", "las", "le", "les",
    "lo", "los", "más", "me", "mi", "mis", "mucho", "muy", "nada", "ni", "no", "nos",
    "nosotros", "o", "otra", "otro", "para", "pero", "poco", "por", "porque", "que", "qué",
    "quien", "se", "sea", "ser", "si", "sí", "sin", "sobre", "son", "su", "sus", "también",
    "tanto", "te", "tiene", "todo", "todos", "tu", "tú", "un", "una", "uno", "unos", "y", "ya",
    "yo",
};

static const char *const italian[] = {
    "a", "ad", "agli", "ai", "al", "alla", "alle", "allo", "anche", "c", "che", "chi", "ci",
    "come", "con", "cui", "d", "da", "dai", "dal", "dalla", "degli", "dei", "del", "della",
    "delle", "dello", "di", "e", "è", "ed", "gli", "ha", "hanno", "ho", "i", "il", "in", "io",
    "l", "la", "le", "lei", "li", "lo", "loro", "lui", "ma", "mi", "mio", "ne", "nei", "nel",
    "nella", "no", "noi", "non", "o", "per", "perché", "più", "quale", "quella", "quello",
    "questa", "questo", "se", "si", "sia", "siamo", "sono", "su", "sua", "sue", "sui", "sul",
    "sulla", "suo", "ti", "tra", "tu", "un", "una", "uno", "voi",
};

static const char *const portuguese[] = {
    "a", "à", "ao", "aos", "as", "às", "com", "como", "da", "das", "de", "dela", "dele",
    "deles", "do", "dos", "e", "é", "ela", "elas", "ele", "eles", "em", "entre", "era", "essa",
    "esse", "esta", "está", "este", "eu", "foi", "há", "isso", "isto", "já", "lhe", "mais",
    "mas", "me", "mesmo", "meu", "minha", "muito", "na", "nas", "não", "nem", "no", "nos",
    "nós", "o", "os", "ou", "para", "pela", "pelo", "por", "qual", "quando", "que", "quem",
    "se", "sem", "ser", "seu", "seus", "só", "sua", "suas", "também", "te", "tem", "um", "uma",
    "você", "vocês",
};

static const char *const dutch[] = {
    "aan", "al", "alles", "als", "bij", "dan", "dat", "de", "der", "deze", "die", "dit",
    "doch", "door", "dus", "een", "en", "er", "geen", "had", "heb", "hebben", "heeft", "het",
    "hier", "hij", "hoe", "hun", "ik", "in", "is", "ja", "je", "kan", "kon", "maar", "me",
    "meer", "men", "met", "mij", "mijn", "moet", "na", "naar", "niet", "niets", "nog", "nu",
    "of", "om", "omdat", "ons", "ook", "op", "over", "te", "tegen", "toch", "toen", "tot", "u",
    "uit", "uw", "van", "veel", "voor", "want", "waren", "was", "wat", "we", "wel", "werd",
    "wie", "wij", "wil", "worden", "zal", "ze", "zelf", "zich", "zij", "zijn", "zo", "zonder",
    "zou",
};

static const char *const swedish[] = {
    "alla", "att", "av", "blev", "bli", "då", "den", "denna", "deras", "dess", "det", "detta",
    "dig", "din", "ditt", "du", "där", "efter", "ej", "eller", "en", "er", "era", "ett", "för",
    "från", "han", "hans", "har", "henne", "hennes", "hon", "honom", "hur", "här", "i", "icke",
    "ingen", "inte", "jag", "kan", "kunde", "man", "med", "mellan", "men", "mig", "min",
    "mitt", "mot", "mycket", "ni", "nu", "när", "och", "om", "oss", "på", "sedan", "sig",
    "sin", "sina", "sitt", "skulle", "som", "så", "till", "under", "upp", "ut", "vad", "var",
    "vara", "varit", "vi", "vid", "vår", "åt", "är", "över",
};

static const char *const norwegian[] = {
    "å", "alle", "andre", "at", "av", "de", "deg", "dei", "dem", "den", "denne", "der", "det",
    "dette", "du", "eller", "en", "er", "et", "etter", "for", "fra", "før", "han", "hans",
    "har", "henne", "hennes", "hun", "hva", "hvor", "hvordan", "i", "ikke", "inn", "jeg",
    "kan", "kunne", "man", "med", "meg", "men", "min", "mitt", "mot", "må", "ned", "noe",
    "nå", "når", "og", "også", "om", "opp", "oss", "på", "seg", "selv", "sin", "sitt", "skal",
    "skulle", "som", "så", "til", "ut", "var", "ved", "vi", "vil", "være", "vært",
};

static const char *const danish[] = {
    "af", "alle", "at", "blev", "blive", "da", "de", "dem", "den", "denne", "der", "deres",
    "det", "dette", "dig", "din", "dog", "du", "efter", "eller", "en", "end", "er", "et",
    "for", "fra", "ham", "han", "hans", "har", "havde", "have", "hende", "hendes", "her",
    "hos", "hun", "hvad", "hvis", "hvor", "i", "ikke", "ind", "jeg", "jer", "kan", "man",
    "med", "meget", "men", "mig", "min", "mit", "mod", "når", "og", "også", "om", "op", "os",
    "på", "sig", "sin", "sit", "skal", "skulle", "som", "så", "til", "ud", "under", "var",
    "vi", "vil", "ville", "være", "været",
};

static const char *const finnish[] = {
    "ei", "eivät", "emme", "en", "et", "ette", "että", "he", "hän", "ja", "jo", "joka",
    "jolla", "jonka", "jos", "jotka", "kanssa", "koska", "kuin", "kun", "me", "mikä",
    "minä", "minun", "mitä", "mutta", "myös", "ne", "niin", "nyt", "ole", "olen", "olet",
    "oli", "olivat", "olla", "on", "ovat", "se", "sekä", "sen", "siinä", "sinä", "sitä",
    "tai", "te", "tämä", "tässä", "vaan", "vai", "voi",
};

static const char *const russian[] = {
    "а", "без", "более", "бы", "был", "была", "были", "было", "быть", "в", "вам", "вас",
    "весь", "во", "вот", "все", "всё", "всех", "вы", "где", "да", "даже", "для", "до", "его",
    "ее", "её", "ей", "ему", "если", "есть", "еще", "ещё", "же", "за", "здесь", "и", "из",
    "или", "им", "их", "к", "как", "когда", "кто", "ли", "мне", "мы", "на", "над", "не",
    "него", "нет", "ни", "них", "но", "ну", "о", "об", "он", "она", "они", "оно", "от", "по",
    "под", "при", "с", "со", "так", "также", "там", "то", "тоже", "только", "ты", "у", "уже",
    "хотя", "чем", "что", "чтобы", "эта", "эти", "это", "этот", "я",
};

#define LIST(name, words) {name, words, sizeof(words) / sizeof(words[0])}

static const struct {
    const char *language;
    const char *const *words;
    size_t count;
} lists[] = {
    LIST("english", english),
    LIST("porter", english),
    LIST("german", german),
    LIST("french", french),
    LIST("spanish", spanish),
    LIST("italian", italian),
    LIST("portuguese", portuguese),
    LIST("dutch", dutch),
    LIST("swedish", swedish),
    LIST("norwegian", norwegian),
    LIST("danish", danish),
    LIST("finnish", finnish),
    LIST("russian", russian),
};

const char *const *text_stopwords(const char *language, size_t *n) {
    *n = 0;
    if (!language) return NULL;
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (strcmp(lists[i].language, language) == 0) {
            *n = lists[i].count;
            return lists[i].words;
        }
    }
    return NULL;
}
