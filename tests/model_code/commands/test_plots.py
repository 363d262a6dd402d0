"""training.png's right panel says what it plots: validation per epoch, the test figure once at the end."""
import pytest

from model_code.commands.plots import plot_training, training_figure


def right_panel(figure):
    axes = figure.axes[1]
    legend = axes.get_legend()
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes.get_lines()}
    return axes.get_title(), [text.get_text() for text in legend.get_texts()] if legend else [], lines


def test_validation_per_epoch_and_the_test_figure_once_after_the_last_epoch():
    title, legend, lines = right_panel(training_figure([3.0, 2.0, 1.5], [0.1, None, 0.3], test=0.25))
    assert title == "Recall@20: validation per epoch; test after the last epoch"
    assert legend == ["validation (each epoch)", "test (once, after the last epoch)"]
    assert lines == {
        "validation (each epoch)": ([1, 3], [0.1, 0.3]),
        "test (once, after the last epoch)": ([3], [0.25]),
    }


def test_without_a_test_set_no_test_figure_is_shown():
    title, legend, lines = right_panel(training_figure([3.0, 2.0], [0.1, 0.2]))
    assert title == "Recall@20: validation per epoch" and legend == ["validation (each epoch)"]
    assert list(lines) == ["validation (each epoch)"]


@pytest.mark.parametrize("test, title", [(0.4, "Recall@20: test after the last epoch"),
                                         (None, "Recall@20: no validation or test set")])
def test_without_validation_sessions_the_title_says_so(test, title):
    got, _, lines = right_panel(training_figure([3.0, 2.0], [None, None], test=test))
    assert got == title and ([([2], [0.4])] if test else []) == list(lines.values())


def test_the_plot_is_written_as_a_png(tmp_path):
    plot_training(tmp_path / "training.png", [3.0, 2.0], [0.1, 0.2], test=0.15)
    assert (tmp_path / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [path.name for path in tmp_path.iterdir()] == ["training.png"]
